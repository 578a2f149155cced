"""The demo's built-in data: a noisy SFT set, its held-out and general suites, replay rows.

Why planted noise: the demo must show that curation finds the kind of mess scraped SFT data has
(exact and near duplicates, empty and truncated answers, wrong answers) and that removing it
helps. Every planted row is recorded in `planted.json`, so the demo can score its own curation
(precision/recall) against ground truth instead of claiming it.

Every training row starts from a *unique* clean instruction (no natural duplicates), so each
duplicate in the file is one we planted. Held-out suite instructions never occur in the
training file, not even after normalising case, whitespace and punctuation.

    data = build_demo_data(Path("demo-data"), DemoDataConfig.preset(quick=False), seed=0)
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kernel.errors import StudioError
from training.data import write_jsonl
from training.synthetic import BASE_FAMILIES, FAMILIES, wrong_response

# Families the tiny base model solves after pretraining (addition stays weak: see the
# tiny-model note), so forgetting on them is visible as a drop from a high base score.
GENERAL_FAMILIES: tuple[str, ...] = ("reverse", "capitals", "second_word", "count_letters")
NEAR_DUP_KINDS: tuple[str, ...] = ("whitespace", "case", "punctuation", "word_edit")
# TUNE families the tiny model learns within a few hundred LoRA steps and whose instruction
# space is large enough for unique rows (repeat_twice has only 40 distinct instructions).
DEMO_FAMILIES: tuple[str, ...] = ("last_word", "join_dash", "swap_words")
SOURCES: tuple[str, ...] = ("forum-scrape", "web-crawl", "user-logs")


@dataclass(frozen=True)
class DemoDataConfig:
    """Sizes and noise rates of the built-in data (defaults: the full ~10-minute demo)."""

    train_per_family: int = 400      # unique clean training instructions per TUNE family (capped by space)
    heldout_per_family: int = 100    # held-out suite items per TUNE family (unique instructions)
    general_per_family: int = 40     # general suite items per GENERAL family (unique instructions)
    replay_per_family: int = 60      # replay rows per BASE family (disjoint from the general suite)
    wrong_rate: float = 0.25         # fraction of unique rows whose response is replaced by a wrong one
    empty_rate: float = 0.03         # fraction of unique rows whose response is emptied
    truncated_rate: float = 0.03     # fraction of unique rows whose response is cut short
    exact_dup_rate: float = 0.10     # exact copies added, as a fraction of the unique rows
    near_dup_rate: float = 0.08      # near copies (whitespace/case/punctuation/one word) added
    heldout_space_fraction: float = 0.25  # held-out takes at most this share of a family's instructions
    general_space_fraction: float = 0.5   # the general suite's share (the rest is left to replay)
    families: tuple[str, ...] = field(default=DEMO_FAMILIES)

    def __post_init__(self) -> None:
        for name in ("train_per_family", "heldout_per_family", "general_per_family",
                     "replay_per_family"):
            if getattr(self, name) < 1:
                raise StudioError(f"demo data: field '{name}' must be >= 1, got {getattr(self, name)}")
        rates = ("wrong_rate", "empty_rate", "truncated_rate", "exact_dup_rate", "near_dup_rate",
                 "heldout_space_fraction", "general_space_fraction")
        for name in rates:
            if not 0 <= getattr(self, name) <= 1:
                raise StudioError(f"demo data: field '{name}' must be in [0, 1], got {getattr(self, name)}")
        if self.wrong_rate + self.empty_rate + self.truncated_rate > 0.9:
            raise StudioError("demo data: wrong_rate + empty_rate + truncated_rate must be <= 0.9")
        unknown = [f for f in self.families if f not in FAMILIES]
        if unknown:
            raise StudioError(f"demo data: field 'families' has unknown families {unknown}")

    @classmethod
    def preset(cls, quick: bool) -> DemoDataConfig:
        """The full demo's sizes, or a reduced set for tests (`studio demo --quick`)."""
        if quick:
            return cls(train_per_family=60, heldout_per_family=15, general_per_family=10,
                       replay_per_family=15)
        return cls()


@dataclass
class DemoData:
    """Paths of the written files and the ground truth of what was planted."""

    train_path: Path
    heldout_path: Path
    general_path: Path
    replay_path: Path
    planted_path: Path
    n_train: int
    n_heldout: int
    n_general: int
    n_replay: int
    planted: dict[str, list[str]]     # kind -> row ids ('wrong', 'empty', 'truncated', 'exact_dup', 'near_dup')
    dup_of: dict[str, str]            # planted copy id -> id of the row it copies

    @property
    def bad_label_ids(self) -> set[str]:
        """Rows whose response does not answer their instruction."""
        return set(self.planted["wrong"]) | set(self.planted["empty"]) | set(self.planted["truncated"])

    @property
    def duplicate_ids(self) -> set[str]:
        return set(self.planted["exact_dup"]) | set(self.planted["near_dup"])

    def dup_groups(self) -> list[set[str]]:
        """Each planted original with its copies (one of them should survive dedup)."""
        groups: dict[str, set[str]] = {}
        for copy, src in self.dup_of.items():
            groups.setdefault(src, {src}).add(copy)
        return list(groups.values())

    def score_curation(self, all_ids: set[str], kept_ids: set[str]) -> dict:
        """Precision/recall of what curation removed, against what was planted.

        A removal is right when the row has a wrong/empty/truncated answer, or when it is one of
        the redundant members of a planted duplicate group (all but one). Removing a clean row
        that nobody duplicated, or the last clean member of a group, is a false positive.
        """
        removed = all_ids - kept_ids
        bad = self.bad_label_ids & all_ids
        dup_redundant = dup_caught = clean_redundant = clean_caught = 0
        for group in self.dup_groups():
            group &= all_ids
            extra, gone = len(group) - 1, len(group & removed)
            dup_redundant += extra
            dup_caught += min(extra, gone)
            if not group & bad:          # a copy shares its source's label: groups are all-clean or all-bad
                clean_redundant += extra
                clean_caught += min(extra, gone)
        n_noise = len(bad) + clean_redundant
        caught = len(removed & bad) + clean_caught
        return {
            "n_rows": len(all_ids), "n_kept": len(kept_ids & all_ids), "n_removed": len(removed),
            "n_planted_bad_labels": len(bad), "bad_labels_removed": len(removed & bad),
            "bad_label_recall": len(removed & bad) / len(bad) if bad else None,
            "n_planted_redundant_dups": dup_redundant, "dups_removed": dup_caught,
            "dup_recall": dup_caught / dup_redundant if dup_redundant else None,
            "precision": caught / len(removed) if removed else None,
            "recall": min(caught, n_noise) / n_noise if n_noise else None,
            "false_positives": len(removed) - caught,
        }


def normalize(text: str) -> str:
    """Case-, whitespace- and punctuation-insensitive form used for the leakage check."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _unique_rows(family: str, n: int, rng: random.Random, exclude: set[str],
                 max_tries: int = 50) -> list[dict]:
    """Up to `n` rows of one family with distinct (normalised) instructions not in `exclude`."""
    seen = set(exclude)
    rows: list[dict] = []
    misses = 0
    while len(rows) < n and misses < max_tries * max(n, 1):
        row = FAMILIES[family].make(rng)
        key = normalize(row["instruction"])
        if key in seen:
            misses += 1
            continue
        seen.add(key)
        rows.append(row)
    return rows


def _space_size(family: str, seed: int, draws: int = 4000) -> int:
    """An estimate of how many distinct instructions a family has (exact for small ones)."""
    rng = random.Random(seed)
    return len({normalize(FAMILIES[family].make(rng)["instruction"]) for _ in range(draws)})


def _suite(families: tuple[str, ...], per_family: int, fraction: float, rng: random.Random,
           seed: int) -> list[dict]:
    rows = []
    for fam in families:
        cap = max(1, int(_space_size(fam, seed) * fraction))
        rows += _unique_rows(fam, min(per_family, cap), rng, exclude=set())
    return rows


def _truncate(text: str, rng: random.Random) -> str:
    """A response cut off early: at most a third of it kept (always shorter than it was)."""
    keep = max(1, len(text) // 3)
    return text[: min(keep, rng.randint(1, keep))]


def _near_variant(text: str, kind: str, rng: random.Random) -> str:
    """The same instruction, written a little differently, so that the response stays right.

    Every change leaves the words the answer copies as they were: upper-casing the whole
    instruction or adding a word at its end would make the copied response wrong for it
    ('give the last word of a b c please' -> 'c'), a planted wrong label counted as clean.
    The random draws are the same as they always were, so the rest of the data is unchanged."""
    if kind == "whitespace":
        words = text.split(" ")
        i = rng.randrange(len(words))
        words[i] = words[i] + "  "
        return "  " + " ".join(words) + " "
    if kind == "case":
        rng.random()              # (drawn as before: it once chose upper-casing everything)
        return text[:1].upper() + text[1:]   # every template starts with a fixed word
    if kind == "punctuation":
        return text + rng.choice(("?", ".", "!", " :"))
    rng.choice((0, 1))            # word_edit: a polite or filler word in front (drawn as before)
    return rng.choice(("please", "now", "kindly")) + " " + text


def _to_record(row: dict, variant: int) -> dict:
    """One alpaca-style JSONL record; like scraped data, optional keys come and go by source."""
    rec = {"id": row["id"], "instruction": row["instruction"]}
    if variant % 2 == 0:
        rec["input"] = ""
    rec["output"] = row["response"]
    rec["category"] = row["category"]
    if variant % 3 != 2:
        rec["source"] = SOURCES[variant % len(SOURCES)]
    return rec


def _suite_record(row: dict, idx: int, prefix: str) -> dict:
    return {"id": f"{prefix}-{idx:04d}", "instruction": row["instruction"],
            "response": row["response"], "category": row["category"], "template": row["template"]}


def _plant_noise(clean: list[dict], cfg: DemoDataConfig, rng: random.Random
                 ) -> tuple[list[dict], dict[str, list[str]], dict[str, str]]:
    """Corrupt some unique rows' responses, then append exact and near copies, and shuffle."""
    rows = [dict(r, id=f"train-{i:05d}") for i, r in enumerate(clean)]
    order = list(range(len(rows)))
    rng.shuffle(order)
    n_wrong, n_empty, n_trunc = (round(len(rows) * r) for r in
                                 (cfg.wrong_rate, cfg.empty_rate, cfg.truncated_rate))
    planted: dict[str, list[str]] = {k: [] for k in ("wrong", "empty", "truncated", "exact_dup", "near_dup")}
    dup_of: dict[str, str] = {}
    for pos, i in enumerate(order[: n_wrong + n_empty + n_trunc]):
        row = rows[i]
        if pos < n_wrong:
            row["response"] = wrong_response(row, rng)
            planted["wrong"].append(row["id"])
        elif pos < n_wrong + n_empty:
            row["response"] = rng.choice(("", " "))
            planted["empty"].append(row["id"])
        else:
            row["response"] = _truncate(row["response"], rng)
            planted["truncated"].append(row["id"])
    copies: list[dict] = []
    for k in range(round(len(rows) * cfg.exact_dup_rate)):
        src = rows[rng.randrange(len(rows))]
        copies.append(dict(src, id=f"dup-{k:05d}", dup_of=src["id"]))
        planted["exact_dup"].append(copies[-1]["id"])
    for k in range(round(len(rows) * cfg.near_dup_rate)):
        src = rows[rng.randrange(len(rows))]
        kind = NEAR_DUP_KINDS[k % len(NEAR_DUP_KINDS)]
        copies.append(dict(src, id=f"near-{k:05d}", dup_of=src["id"],
                           instruction=_near_variant(src["instruction"], kind, rng)))
        planted["near_dup"].append(copies[-1]["id"])
    # A copy inherits its source's label problem: it is also a bad label.
    bad = {kind: set(planted[kind]) for kind in ("wrong", "empty", "truncated")}
    for copy in copies:
        dup_of[copy["id"]] = copy["dup_of"]
        for kind, ids in bad.items():
            if copy["dup_of"] in ids:
                planted[kind].append(copy["id"])
    out = rows + copies
    rng.shuffle(out)
    return out, planted, dup_of


def build_demo_data(out_dir: Path, cfg: DemoDataConfig, seed: int,
                    suite_seed: int | None = None) -> DemoData:
    """Write train.jsonl (noisy, alpaca with varying keys), heldout/general suites, replay rows, planted.json.

    `suite_seed` (another seed than `seed`) fixes the two suites while the training data and its
    noise follow `seed`: runs over several seeds are then scored on the same examples, as a
    paired, two-level comparison needs."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    own = suite_seed is None or suite_seed == seed
    suite_rng, s_seed = (rng, seed) if own else (random.Random(suite_seed), suite_seed)
    heldout = _suite(cfg.families, cfg.heldout_per_family, cfg.heldout_space_fraction, suite_rng,
                     s_seed)
    general = _suite(GENERAL_FAMILIES, cfg.general_per_family, cfg.general_space_fraction,
                     suite_rng, s_seed)
    held_keys = {normalize(r["instruction"]) for r in heldout}
    clean: list[dict] = []
    for fam in cfg.families:
        clean += _unique_rows(fam, cfg.train_per_family, rng, exclude=held_keys)
    rng.shuffle(clean)
    train, planted, dup_of = _plant_noise(clean, cfg, rng)
    # A near variant may normalise onto a held-out instruction only if its source did; check anyway.
    leaks = [r["id"] for r in train if normalize(r["instruction"]) in held_keys]
    if leaks:
        raise StudioError(f"demo data: training rows {leaks[:5]} leak held-out instructions")
    general_keys = {normalize(r["instruction"]) for r in general}
    replay: list[dict] = []
    for fam in BASE_FAMILIES:
        replay += _unique_rows(fam, cfg.replay_per_family, rng, exclude=general_keys)
    rng.shuffle(replay)

    paths = {name: out_dir / f"{name}.jsonl" for name in ("train", "heldout", "general", "replay")}
    write_jsonl(paths["train"], [_to_record(r, i) for i, r in enumerate(train)])
    write_jsonl(paths["heldout"], [_suite_record(r, i, "heldout") for i, r in enumerate(heldout)])
    write_jsonl(paths["general"], [_suite_record(r, i, "general") for i, r in enumerate(general)])
    write_jsonl(paths["replay"], [_to_record(dict(r, id=f"replay-{i:04d}"), 0)
                                   for i, r in enumerate(replay)])
    planted_path = out_dir / "planted.json"
    planted_path.write_text(json.dumps({"seed": seed, "config": asdict(cfg), "planted": planted,
                                        "dup_of": dup_of},
                                       indent=1))
    return DemoData(train_path=paths["train"], heldout_path=paths["heldout"],
                    general_path=paths["general"], replay_path=paths["replay"],
                    planted_path=planted_path, n_train=len(train), n_heldout=len(heldout),
                    n_general=len(general), n_replay=len(replay), planted=planted,
                    dup_of=dup_of)
