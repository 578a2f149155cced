"""The synthetic task families are deterministic and their answers are right."""

from __future__ import annotations

import random

import pytest

from training.synthetic import (
    BASE_FAMILIES,
    FAMILIES,
    TUNE_FAMILIES,
    WORDS,
    generate,
    wrong_response,
)


def test_same_seed_same_rows_other_seed_other_rows():
    a = generate(list(FAMILIES), 20, seed=1)
    assert a == generate(list(FAMILIES), 20, seed=1)
    assert a != generate(list(FAMILIES), 20, seed=2)
    assert len(a) == 20 * len(FAMILIES)


def test_answers_follow_the_instruction():
    for row in generate(["reverse", "add", "last_word", "swap_words"], 30, seed=0):
        words = row["instruction"].split()
        if row["category"] == "reverse":
            (word,) = [w for w in words if w in WORDS]
            assert row["response"] == word[::-1]
        elif row["category"] == "add":
            nums = [int(w) for w in words if w.isdigit()]
            assert row["response"] == str(sum(nums))
        elif row["category"] == "last_word":
            assert row["response"] == words[-1]
        else:
            assert row["response"] == f"{words[-1]} {words[-2]}"


def test_base_and_tune_families_are_disjoint():
    assert not set(BASE_FAMILIES) & set(TUNE_FAMILIES)
    assert set(BASE_FAMILIES) | set(TUNE_FAMILIES) == set(FAMILIES)


def test_wrong_response_is_wrong():
    rng = random.Random(0)
    for row in generate(list(FAMILIES), 10, seed=3):
        assert wrong_response(row, rng) != row["response"]


def test_unknown_family_is_named():
    with pytest.raises(ValueError, match="nope"):
        generate(["nope"], 1, seed=0)
