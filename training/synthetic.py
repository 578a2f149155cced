"""Deterministic synthetic instruction tasks with exact answers.

They are the offline world the studio is tested and demonstrated in: the tiny base model is
pretrained on the BASE families (so a general suite can measure forgetting), and the demo
fine-tunes it on the TUNE families, which the base model has never seen. Every family has a few
instruction templates (so statistics can cluster by template) and a cheap exact checker.

    from training.synthetic import generate
    rows = generate(["reverse", "repeat_twice"], n_per_family=100, seed=0)
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

WORDS: tuple[str, ...] = (
    "apple", "river", "stone", "cloud", "tiger", "maple", "ocean", "piano", "lemon", "robot",
    "candle", "forest", "planet", "silver", "garden", "window", "rocket", "pepper", "castle", "bridge",
)


@dataclass(frozen=True)
class TaskFamily:
    """One task: instruction templates over sampled arguments, and the exact answer."""

    name: str
    templates: tuple[str, ...]
    sample_args: Callable[[random.Random], dict]
    answer: Callable[[dict], str]

    def make(self, rng: random.Random) -> dict:
        args = self.sample_args(rng)
        template = rng.randrange(len(self.templates))
        return {
            "instruction": self.templates[template].format(**args),
            "response": self.answer(args),
            "category": self.name,
            "template": f"{self.name}/{template}",
        }


def _one_word(rng: random.Random) -> dict:
    return {"w": rng.choice(WORDS)}


def _words(k: int) -> Callable[[random.Random], dict]:
    def sample(rng: random.Random) -> dict:
        picked = rng.sample(WORDS, k)
        return {f"w{i + 1}": w for i, w in enumerate(picked)}

    return sample


def _two_numbers(rng: random.Random) -> dict:
    return {"a": rng.randrange(50), "b": rng.randrange(50)}


FAMILIES: dict[str, TaskFamily] = {f.name: f for f in (
    # --- BASE: what the tiny model learns in pretraining (the "general" skills) -------------
    TaskFamily("reverse", ("reverse the word {w}", "write {w} backwards"),
               _one_word, lambda a: a["w"][::-1]),
    TaskFamily("capitals", ("write {w} in capitals", "uppercase the word {w}"),
               _one_word, lambda a: a["w"].upper()),
    TaskFamily("add", ("add {a} and {b}", "what is {a} plus {b}"),
               _two_numbers, lambda a: str(a["a"] + a["b"])),
    TaskFamily("second_word", ("give the second word of {w1} {w2} {w3}",
                               "which word is second in {w1} {w2} {w3}"),
               _words(3), lambda a: a["w2"]),
    TaskFamily("count_letters", ("count the letters in {w}", "how many letters are in {w}"),
               _one_word, lambda a: str(len(a["w"]))),
    # --- TUNE: new skills for fine-tuning, never seen in pretraining -------------------------
    TaskFamily("repeat_twice", ("say {w} two times", "repeat the word {w} twice"),
               _one_word, lambda a: f"{a['w']} {a['w']}"),
    TaskFamily("last_word", ("give the last word of {w1} {w2} {w3}",
                             "which word is last in {w1} {w2} {w3}"),
               _words(3), lambda a: a["w3"]),
    TaskFamily("join_dash", ("join {w1} and {w2} with a dash", "connect {w1} and {w2} using a dash"),
               _words(2), lambda a: f"{a['w1']}-{a['w2']}"),
    TaskFamily("swap_words", ("swap the words {w1} {w2}", "swap {w1} {w2}"),
               _words(2), lambda a: f"{a['w2']} {a['w1']}"),
)}

BASE_FAMILIES: tuple[str, ...] = ("reverse", "capitals", "add", "second_word", "count_letters")
TUNE_FAMILIES: tuple[str, ...] = ("repeat_twice", "last_word", "join_dash", "swap_words")


def generate(families: Sequence[str], n_per_family: int, seed: int) -> list[dict]:
    """`n_per_family` examples of each family, interleaved, reproducible for a seed."""
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown task families {unknown}; known: {sorted(FAMILIES)}")
    rng = random.Random(seed)
    rows = [FAMILIES[f].make(rng) for _ in range(n_per_family) for f in families]
    return rows


def wrong_response(row: dict, rng: random.Random) -> str:
    """A plausible but wrong answer for `row` (label noise that looks like real data)."""
    family = FAMILIES[row["category"]]
    for _ in range(20):
        candidate = family.make(rng)["response"]
        if candidate != row["response"]:
            return candidate
    return row["response"] + "x"


def corpus(seed: int = 0, n_per_family: int = 200) -> Iterator[str]:
    """Text covering every family's vocabulary, for training the tokenizer."""
    for row in generate(list(FAMILIES), n_per_family, seed):
        yield row["instruction"]
        yield row["response"]
