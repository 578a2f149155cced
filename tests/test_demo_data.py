"""The demo's built-in data: deterministic, planted noise counted right, no held-out leakage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kernel.errors import StudioError
from studio.demo.data import DEMO_FAMILIES, DemoDataConfig, build_demo_data, normalize
from training.synthetic import WORDS

CFG = DemoDataConfig.preset(quick=True)


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _pair(rec: dict) -> tuple[str, str]:
    if "messages" in rec:
        return rec["messages"][0]["content"], rec["messages"][-1]["content"]
    return rec["instruction"], rec["output"]


def _answer(instruction: str, family: str) -> str:
    """The right answer, computed from the words of the instruction (independent of generation)."""
    words = [w for w in normalize(instruction).split() if w in WORDS]
    answers = {
        "repeat_twice": lambda: f"{words[0]} {words[0]}",
        "last_word": lambda: words[-1],
        "join_dash": lambda: f"{words[0]}-{words[1]}",
        "swap_words": lambda: f"{words[1]} {words[0]}",
        "reverse": lambda: words[0][::-1],
        "capitals": lambda: words[0].upper(),
        "second_word": lambda: words[1],
        "count_letters": lambda: str(len(words[0])),
    }
    return answers[family]()


def test_same_seed_same_files_other_seed_differs(tmp_path: Path):
    a = build_demo_data(tmp_path / "a", CFG, seed=3)
    build_demo_data(tmp_path / "b", CFG, seed=3)
    c = build_demo_data(tmp_path / "c", CFG, seed=4)
    for name in ("train.jsonl", "heldout.jsonl", "general.jsonl", "replay.jsonl", "planted.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert a.train_path.read_bytes() != c.train_path.read_bytes()


def test_planted_counts_and_ids_match_the_file(tmp_path: Path):
    data = build_demo_data(tmp_path, CFG, seed=0)
    records = _read(data.train_path)
    assert len(records) == data.n_train
    ids = [r["id"] for r in records]
    assert len(set(ids)) == len(ids)
    n_unique = sum(1 for i in ids if i.startswith("train-"))
    assert len(data.planted["exact_dup"]) == round(n_unique * CFG.exact_dup_rate)
    assert len(data.planted["near_dup"]) == round(n_unique * CFG.near_dup_rate)
    originals = [i for i in data.planted["wrong"] if i.startswith("train-")]
    assert len(originals) == round(n_unique * CFG.wrong_rate)
    assert set().union(*data.planted.values()) <= set(ids)
    # Optional keys vary between records (as in scraped data); the required ones never do.
    assert any("input" in r for r in records) and any("input" not in r for r in records)
    assert all("instruction" in r and "output" in r for r in records)


def test_bad_labels_are_exactly_the_rows_with_wrong_answers(tmp_path: Path):
    data = build_demo_data(tmp_path, CFG, seed=1)
    bad = data.bad_label_ids
    for rec in _read(data.train_path):
        instruction, response = _pair(rec)
        right = _answer(instruction, rec["category"])
        assert (response != right) == (rec["id"] in bad), rec


def test_duplicates_copy_a_row_and_near_ones_differ_only_in_form(tmp_path: Path):
    data = build_demo_data(tmp_path, CFG, seed=2)
    records = {r["id"]: _pair(r) for r in _read(data.train_path)}
    originals = {v for k, v in records.items() if k.startswith("train-")}
    originals_norm = {(normalize(i), r) for i, r in originals}
    for rid in data.planted["exact_dup"]:
        assert records[rid] in originals
    changed = 0
    for rid in data.planted["near_dup"]:
        instruction, response = records[rid]
        changed += records[rid] not in originals
        words = normalize(instruction).split()
        stripped = " ".join(w for w in words if w not in ("please", "now", "kindly"))
        assert (stripped, response) in originals_norm
    assert changed == len(data.planted["near_dup"])
    # Clean unique rows have distinct instructions: no natural duplicates blur the ground truth.
    keys = [normalize(i) for k, (i, _) in records.items() if k.startswith("train-")]
    assert len(keys) == len(set(keys))


def test_suites_are_clean_and_do_not_leak_into_training(tmp_path: Path):
    data = build_demo_data(tmp_path, CFG, seed=0)
    train_keys = {normalize(_pair(r)[0]) for r in _read(data.train_path)}
    heldout = _read(data.heldout_path)
    assert {r["category"] for r in heldout} == set(DEMO_FAMILIES)
    assert len(heldout) == data.n_heldout
    for row in heldout:
        assert normalize(row["instruction"]) not in train_keys
        assert row["response"] == _answer(row["instruction"], row["category"])
    general = _read(data.general_path)
    replay_keys = {normalize(r["instruction"]) for r in _read(data.replay_path)}
    for row in general:
        assert normalize(row["instruction"]) not in replay_keys
        assert row["response"] == _answer(row["instruction"], row["category"])


def test_config_validation_names_the_field():
    with pytest.raises(StudioError, match="wrong_rate"):
        DemoDataConfig(wrong_rate=1.5)
    with pytest.raises(StudioError, match="train_per_family"):
        DemoDataConfig(train_per_family=0)
    with pytest.raises(StudioError, match="families"):
        DemoDataConfig(families=("nope",))


def test_curation_score_counts_right_and_wrong_removals(tmp_path: Path):
    data = build_demo_data(tmp_path, CFG, seed=0)
    all_ids = {r["id"] for r in _read(data.train_path)}
    nothing = data.score_curation(all_ids, all_ids)
    assert nothing["n_removed"] == 0 and nothing["recall"] == 0 and nothing["precision"] is None
    # The oracle: drop every bad label and every planted copy -> precision 1, full recall.
    oracle = data.score_curation(all_ids, all_ids - data.bad_label_ids - data.duplicate_ids)
    assert oracle["precision"] == 1.0 and oracle["recall"] == 1.0
    assert oracle["bad_label_recall"] == 1.0
    assert oracle["dup_recall"] == 1.0 and oracle["false_positives"] == 0
    # Dropping a clean, never-copied row is a false positive.
    copied = set(data.dup_of.values()) | set(data.dup_of)
    clean = sorted(all_ids - data.bad_label_ids - copied)[:3]
    worse = data.score_curation(all_ids, all_ids - data.bad_label_ids - data.duplicate_ids - set(clean))
    assert worse["false_positives"] == 3 and worse["precision"] < 1.0


def _answer_as_written(instruction: str, family: str) -> str:
    """The right answer from the instruction's words exactly as written (case kept, filler
    words kept): what a model reading that instruction should answer."""
    tokens = [t for t in (t.strip("?.!:") for t in instruction.split()) if t]
    if family == "last_word":
        return tokens[-1]
    if family == "swap_words":
        return f"{tokens[-1]} {tokens[-2]}"
    at = tokens.index("and")           # join {w1} and {w2} with a dash / connect ... using a dash
    return f"{tokens[at - 1]}-{tokens[at + 1]}"


@pytest.mark.parametrize("seed", [0, 1])
def test_near_copies_of_clean_rows_keep_their_answer_right_as_written(tmp_path: Path, seed: int):
    """A near copy must not be a hidden wrong label: upper-casing a whole instruction or adding
    a word at its end ('give the last word of a b c please' -> 'c') made the copied answer
    wrong for the copy while the ground truth counted it clean."""
    data = build_demo_data(tmp_path, DemoDataConfig(), seed=seed)
    records = {r["id"]: r for r in _read(data.train_path)}
    bad = data.bad_label_ids
    checked = 0
    for rid in data.planted["near_dup"]:
        if rid in bad:
            continue
        instruction, response = _pair(records[rid])
        assert _answer_as_written(instruction, records[rid]["category"]) == response, records[rid]
        checked += 1
    assert checked > 50
