"""Metrics on hand-checked strings, and custom metrics registered by name."""

from __future__ import annotations

import pytest

from evals.metrics import REGISTRY, MetricSpec, chrf, get_metric, lcs_length, register_metric
from kernel.errors import StudioError


def row(ref: str) -> dict:
    return {"id": "r", "messages": [{"role": "user", "content": "q"},
                                    {"role": "assistant", "content": ref}]}


def score(spec: str, out: str, ref: str = "The cat sat") -> float:
    return MetricSpec(spec).score(out, row(ref))


def test_exact_match_normalizes_case_punctuation_articles():
    assert score("exact_match", "the CAT sat!") == 1.0
    assert score("exact_match", "a cat sat") == 1.0
    assert score("exact_match", "cat sits") == 0.0


def test_token_f1_and_rouge_l_hand_values():
    # pred "cat sat on mat" vs ref "cat on the mat" (article dropped -> "cat on mat")
    assert score("token_f1", "cat sat on mat", "cat on the mat") == pytest.approx(2 * 0.75 * 1 / 1.75)
    # LCS("cat sat on mat", "cat on mat") = 3 -> P 3/4, R 3/3
    assert score("rouge_l", "cat sat on mat", "cat on the mat") == pytest.approx(2 * 0.75 / 1.75)
    assert lcs_length(list("ABCBDAB"), list("BDCABA")) == 4
    assert score("rouge_l", "", "") == 1.0 and score("token_f1", "x", "y") == 0.0


def test_chrf_bounds_and_order():
    assert chrf("hello world", "hello world") == pytest.approx(1.0)
    assert chrf("abc", "xyz") == 0.0
    assert chrf("hello wrld", "hello world") > chrf("help", "hello world") > 0


def test_contains_regex_json_length():
    assert score("contains:CAT", "a big cat") == 1.0
    assert score("contains", "yes, the cat sat.") == 1.0
    assert score(r"regex:^\d+$", "42") == 1.0 and score(r"regex:^\d+$", "42a") == 0.0
    assert score("json_valid", '{"a": [1, 2]}') == 1.0 and score("json_valid", "{a:") == 0.0
    assert score("length", "one two three") == 3.0
    assert get_metric("exact_match").binary and get_metric("length").higher_is_better is None


def test_custom_metric_registered_by_name():
    @register_metric("ends_with_period", binary=True)
    def ends_with_period(output, row, arg=None):
        return float(output.strip().endswith("."))

    try:
        assert score("ends_with_period", "done.") == 1.0
        assert score("ends_with_period", "done") == 0.0
    finally:
        REGISTRY.pop("ends_with_period")


def test_bad_metric_specs_raise_studio_error():
    with pytest.raises(StudioError, match="unknown name 'nope'"):
        get_metric("nope")
    with pytest.raises(StudioError, match="needs an argument"):
        get_metric("regex")
    with pytest.raises(StudioError, match="invalid regular expression"):
        get_metric("regex:(")
