"""The Compare page and what it reads: stored per-example results, cached statistics, verdicts,
p-value formatting, the diff's right/wrong marks, the charts' specs (issue 11, defects 2-5).

Fast tests check the pure pieces; the slow ones evaluate the tiny model and two LoRA adapters
for real (HF backend) and read the results back through the library and the page.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from evals.stats import binomial_half_two_sided, format_p
from studio.ui import charts, compare_data
from studio.ui.diff import side_by_side

PAGE = Path(__file__).resolve().parents[1] / "studio" / "views" / "compare.py"
RAW_P = re.compile(r"\d\.\d{4}|e-\d")      # "0.0000" or 5e-24 written out


# --- fast: pure functions --------------------------------------------------------------------

@pytest.mark.parametrize("p, text", [(5e-24, "p < 0.001"), (0.0, "p < 0.001"),
                                     (0.00099, "p < 0.001"), (0.001, "p = 0.001"),
                                     (0.0123, "p = 0.012"), (0.02, "p = 0.02"),
                                     (0.049, "p = 0.049"), (0.3449, "p = 0.34"),
                                     (0.9999, "p = 1"), (None, "p n/a")])
def test_p_values_are_written_as_people_read_them(p, text):
    assert format_p(p) == text


def test_exact_mcnemar_binomial_matches_scipy():
    from scipy.stats import binomtest

    for n in (1, 2, 7, 30, 31, 400, 2001):
        for k in sorted({0, 1, n // 3, n // 2, n - 1, n}):
            want = binomtest(k, n, 0.5).pvalue
            assert binomial_half_two_sided(k, n) == pytest.approx(want, rel=1e-9, abs=1e-300)


def test_diff_marks_right_and_wrong_apart_from_the_changed_words():
    html = side_by_side("The capital is Paris", "The capital is Lyon", "baseline", "candidate",
                        score_a=1.0, score_b=0.0)
    left, right = html.split('<div class="tsdiff">')[1].split("</div><div")
    assert 'class="right"' in left and "✓ right" in left
    assert 'class="wrong"' in right and "✗ wrong" in right
    # the changed word is highlighted the same neutral way on both sides: no strike-through,
    # no green for the wrong answer
    assert '<span class="chg">Paris</span>' in left and '<span class="chg">Lyon</span>' in right
    assert "line-through" not in html and 'class="ins"' not in html
    # a graded metric in between shows its score, not a verdict
    mid = side_by_side("a b", "a c", "x", "y", score_a=0.5, score_b=1.0, binary=False)
    assert "score 0.50" in mid and "✓ right" in mid


def test_user_text_in_the_diff_is_escaped():
    html = side_by_side("<script>x</script>", "<b>y</b>", "<i>a</i>", "b")
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;i&gt;a" in html


def long_table() -> pd.DataFrame:
    ckpts = ["base:/models/tiny", "r1/step-10", "r2/step-20", "r1/step-20"]
    means = [0.1, 0.3, 0.6, 0.5]
    names = {"r1": "raw", "r2": "curated"}
    label = compare_data.labeller(names)
    long = pd.DataFrame({"checkpoint": [label(c) for c in ckpts],
                         "metric": "exact_match", "mean": means,
                         "low": [m - 0.05 for m in means], "high": [m + 0.05 for m in means],
                         "n": 100})
    return compare_data.over_checkpoints(long, ckpts, run_names=names), long


def layers(chart) -> list[dict]:
    return chart.to_dict()["layer"]


def test_metric_over_checkpoints_joins_only_the_steps_of_one_run():
    frame, long = long_table()
    # the steps of a run are adjacent and in step order; base and other runs stand alone
    assert list(frame["run"]) == ["base model", "raw · r1", "raw · r1", "curated · r2"]
    assert list(frame["step"]) == [0, 10, 20, 20]
    best = compare_data.best_checkpoint(long, higher_is_better=True)
    assert best == "curated · r2 / step-20"
    spec = layers(charts.metric_over_checkpoints(frame, "exact_match", best=best))
    line = next(layer for layer in spec if layer["mark"]["type"] == "line")
    assert line["encoding"]["detail"]["field"] == "run"      # one line per run, never across
    assert line["encoding"]["color"]["field"] == "run"
    assert line["encoding"]["color"]["legend"]["title"] == "run"
    assert line["encoding"]["x"]["title"] and line["encoding"]["y"]["title"] == "exact_match"
    rings = [layer for layer in spec if layer.get("transform")]
    assert rings and all("curated · r2 / step-20" in str(r["transform"]) for r in rings)
    text = [layer for layer in spec if layer["mark"]["type"] == "text"]
    assert text and text[0]["mark"]["text"] == "★ best"


def test_bars_have_a_colour_per_series_a_legend_axis_titles_and_the_best_marked():
    _, long = long_table()
    spec = layers(charts.bars_with_ci(long, "checkpoint", "mean", "low", "high",
                                      best="curated · r2 / step-20", x_title="checkpoint",
                                      y_title="exact_match"))
    bars = spec[0]
    assert bars["encoding"]["color"]["field"] == "checkpoint"
    assert "legend" in bars["encoding"]["color"] and bars["encoding"]["color"]["legend"] is not None
    assert bars["encoding"]["x"]["title"] == "checkpoint"
    assert bars["encoding"]["y"]["title"] == "exact_match"
    assert "condition" in bars["encoding"]["opacity"]        # the best solid, others faded
    assert spec[-1]["mark"]["text"] == "★ best"
    # a metric without a direction has no best
    assert compare_data.best_checkpoint(long, higher_is_better=None) is None
    assert compare_data.best_checkpoint(long, higher_is_better=False) == "base: tiny"


def test_compare_names_checkpoints_as_every_other_page_does():
    """Compare's labels are `studio.ui.runs.checkpoint_label`'s (Train, Evaluate, Experiments):
    run name + short id + step, the base model by its name, never its folder path."""
    from studio.ui.runs import checkpoint_label

    names = {"train-20261203-233408-eee4": "demo-raw"}
    label = compare_data.labeller(names)
    runs_by_id = {"train-20261203-233408-eee4": {"id": "train-20261203-233408-eee4",
                                                 "name": "demo-raw"}}
    for ckpt in ("base:/tmp/ws/models/tiny-6547b98c2438", "train-20261203-233408-eee4/step-300",
                 "train-20261203-234043-486b/step-300", "/tmp/adapters/lora-a"):
        assert label(ckpt) == checkpoint_label(ckpt, runs_by_id)
    assert label("base:/tmp/ws/models/tiny-6547b98c2438") == "base: tiny-6547b98c2438"
    assert label("train-20261203-233408-eee4/step-300") == "demo-raw · eee4 / step-300"
    assert label("train-20261203-234043-486b/step-300") == "train-20261203-234043-486b / step-300"
    comps = [{"baseline": "base:/tmp/ws/models/tiny-6547b98c2438",
              "candidate": "train-20261203-233408-eee4/step-300",
              "metrics": [{"metric": "em", "baseline": {"mean": 0.1, "low": 0, "high": 0.2, "n": 9},
                           "candidate": {"mean": 0.5, "low": 0.3, "high": 0.7, "n": 9},
                           "diff": 0.4, "ci_low": 0.2, "ci_high": 0.6, "p_value": 0.01, "n": 9}],
              "breakdown": [{"category": "c", "metric": "em", "n": 9, "baseline": 0.1,
                             "candidate": 0.5, "diff": 0.4}]}]
    assert list(compare_data.checkpoint_metric_table(comps, label)["checkpoint"]) == [
        "base: tiny-6547b98c2438", "demo-raw · eee4 / step-300"]
    assert list(compare_data.paired_table(comps, label)["candidate"]) == [
        "demo-raw · eee4 / step-300"]
    assert list(compare_data.breakdown_table(comps, label)["checkpoint"]) == [
        "demo-raw · eee4 / step-300"]


def test_small_n_caveat_is_dropped_where_the_difference_is_significant():
    comps = [{"candidate": "a", "metrics": [{"metric": "em", "significant": True},
                                            {"metric": "f1", "significant": False}],
              "warnings": ["em: n=300 cannot reliably detect a difference of +0.010",
                           "f1: n=300 cannot reliably detect a difference of +0.010"]}]
    assert compare_data.warnings(comps) == [
        "not significant, and n=300 cannot reliably detect a difference of +0.010 (f1)"]


# --- slow: real evaluations of the tiny model and two adapters --------------------------------

@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, tiny_model):
    """A task suite with categories and a general suite, evaluated for real (HF backend) on the
    base model and two perturbed LoRA adapters; the scores are stored by `evaluate`."""
    from kernel.store import Store
    from tests.helpers.fixtures import evaluated_workspace

    tmp = tmp_path_factory.mktemp("compare")
    store = Store(tmp / "ws")
    ckpts = evaluated_workspace(store, tiny_model, tmp)
    return store, ckpts


@pytest.mark.slow
def test_stored_comparison_matches_a_fresh_one_and_is_computed_once(evaluated):
    from evals.backends import CacheOnly
    from evals.compare import compare, compare_stored

    store, (base, a, b) = evaluated
    stored = compare_stored(store, "task", base, [a])[0]
    fresh = compare(store, "task", base, a, backend=CacheOnly("evaluate first"))
    for got, want in zip(stored.metrics, fresh.metrics, strict=True):
        for key in ("metric", "diff", "ci_low", "ci_high", "p_value", "n_regressed"):
            assert got[key] == pytest.approx(want[key]), key
        assert got["baseline"]["mean"] == pytest.approx(want["baseline"]["mean"])
    assert [r["row_id"] for r in stored.regressions] == [r["row_id"] for r in fresh.regressions]
    assert stored.backend == fresh.backend and stored.backend["backend"] == "hf"
    assert stored.breakdown == fresh.breakdown
    cached = store.query("SELECT candidate FROM comparison_cache")
    assert [r["candidate"] for r in cached] == [a]
    # a second look reads the cache; adding a candidate computes only the new pair, and the
    # Holm family then spans both candidates' metrics
    again = compare_stored(store, "task", base, [a, b])
    assert again[0].metrics[0]["diff"] == stored.metrics[0]["diff"]
    assert sorted(r["candidate"] for r in store.query(
        "SELECT candidate FROM comparison_cache")) == sorted([a, b])
    assert again[0].family_size == 4 and stored.family_size == 2


@pytest.mark.slow
def test_stored_results_name_a_checkpoint_that_was_not_evaluated(evaluated, tmp_path):
    from evals.results import stored_results
    from kernel.errors import StudioError

    store, (base, _, _) = evaluated
    got = stored_results(store, "task", [base])
    assert set(got.scores[base]) == {"exact_match", "token_f1"}
    assert len(got.scores[base]["exact_match"]) == 16 and got.outputs[base]["task-0"]
    with pytest.raises(StudioError, match="run-x/step-1.*evaluate it first"):
        stored_results(store, "task", [base, "run-x/step-1"])


@pytest.fixture
def page_env(evaluated, monkeypatch):
    monkeypatch.setenv("STUDIO_WORKSPACE", str(evaluated[0].workspace.root))
    return evaluated


def run_page(at: AppTest) -> AppTest:
    at.run(timeout=120)
    assert not at.exception, at.exception
    return at


@pytest.mark.slow
def test_page_leads_with_verdicts_and_formats_p_values(page_env):
    store, (base, a, b) = page_env
    at = run_page(AppTest.from_file(str(PAGE), default_timeout=120))
    assert at.selectbox(key="cmp_suite").value == "task"
    assert at.selectbox(key="cmp_baseline").value == base
    verdicts = [e.value for kind in ("success", "error", "info") for e in getattr(at, kind)]
    lines = [v for v in verdicts if "exact_match" in v]
    assert len(lines) == 2                                     # one per candidate
    for v in lines:
        assert ("significant after Holm adjustment" in v) or ("no significant difference" in v)
        assert re.search(r"[+-]\d\.\d{3} \[[+-]\d\.\d{3}, [+-]\d\.\d{3}\]", v), v
        assert not RAW_P.search(v), v
    paired = at.dataframe[1].value
    assert set(paired["metric"]) == {"exact_match", "token_f1"}
    assert not paired["p"].str.contains(RAW_P).any(), paired["p"]
    assert paired["p_adjusted"].str.match(r"^(< 0\.001|= [01](\.\d+)?)$").all(), paired
    # no "cannot detect" banner beside a significant difference
    sig = set(paired.loc[paired["significant"], "metric"])
    for w in (w for w in at.warning if "cannot reliably detect" in w.value):
        assert not any(f"({m})" in w.value or f", {m}" in w.value for m in sig), w.value
    assert any("hf" in c.value for c in at.caption)           # which backend's outputs


@pytest.mark.slow
def test_categories_tab_keeps_the_candidate_names(page_env):
    store, (base, a, b) = page_env
    at = AppTest.from_file(str(PAGE), default_timeout=120)
    at.session_state["cmp_tab"] = "Categories"
    run_page(at)
    cats = at.dataframe[0].value
    assert set(cats["checkpoint"]) == {a, b}                  # not the means
    assert set(cats["category"]) == {"reverse", "capitals"}
    chart = at.get("arrow_vega_lite_chart")[0] if at.get("arrow_vega_lite_chart") else \
        at.get("vega_lite_chart")[0]
    spec = str(chart.proto)
    assert '\\"field\\": \\"checkpoint\\"' in spec or '"field": "checkpoint"' in spec


@pytest.mark.slow
def test_query_params_select_the_view(page_env):
    store, (base, a, b) = page_env
    at = AppTest.from_file(str(PAGE), default_timeout=120)
    at.query_params["cmp_suite"] = "general"
    at.query_params["cmp_baseline"] = a
    at.query_params["cmp_tab"] = "Examples"
    run_page(at)
    assert at.selectbox(key="cmp_suite").value == "general"
    assert at.selectbox(key="cmp_baseline").value == a
    assert set(at.multiselect(key="cmp_candidates").value) == {base, b}
    diffs = [e for e in at.get("html") if "tsdiff" in str(e.proto)]
    assert at.radio(key="cmp_kind") is not None
    assert all("✓" in str(e.proto) or "✗" in str(e.proto) or "score" in str(e.proto)
               for e in diffs)
    assert os.environ["STUDIO_WORKSPACE"]


@pytest.mark.slow
def test_changed_results_are_recomputed_and_replace_their_cached_statistics(evaluated):
    from evals.compare import compare_stored

    store, (base, a, _) = evaluated
    first = compare_stored(store, "general", base, [a])[0]
    where = "suite = 'general' AND checkpoint = ? AND metric = 'exact_match' AND row_id = ?"
    old = store.query(f"SELECT value FROM eval_scores WHERE {where}", [a, "general-0"])[0]["value"]
    try:
        with store.transaction() as con:       # as a re-evaluation with another outcome would
            con.execute(f"UPDATE eval_scores SET value = ? WHERE {where}",
                        [1.0 - old, a, "general-0"])
        second = compare_stored(store, "general", base, [a])[0]
        em = [m for m in second.metrics if m["metric"] == "exact_match"][0]
        before = [m for m in first.metrics if m["metric"] == "exact_match"][0]
        assert em["diff"] == pytest.approx(before["diff"] + (1.0 - 2 * old) / 8)
        kept = store.query("SELECT key FROM comparison_cache WHERE suite = 'general' AND "
                           "baseline = ? AND candidate = ?", [base, a])
        assert len(kept) == 1                       # the stale statistics are gone
    finally:
        with store.transaction() as con:
            con.execute(f"UPDATE eval_scores SET value = ? WHERE {where}", [old, a, "general-0"])


def test_outputs_of_different_backends_are_named_in_a_warning():
    import numpy as np

    from evals.compare import _backend_note
    from evals.results import StoredResults
    from evals.suites import Suite

    suite = Suite(name="s", metrics=["exact_match"],
                  rows=[{"id": "r", "messages": [{"role": "user", "content": "q"}],
                         "response": "a"}])
    hf, vllm = {"backend": "hf", "dtype": "float32"}, {"backend": "vllm", "dtype": "float32"}
    stored = StoredResults(suite, scores={"a": {"exact_match": np.ones(1)},
                                          "b": {"exact_match": np.zeros(1)}},
                           backends={"a": hf, "b": vllm})
    note = _backend_note(stored, "a", "b")
    assert note and "hf (dtype float32)" in note and "vllm (dtype float32)" in note
    stored.backends["b"] = dict(hf)
    assert _backend_note(stored, "a", "b") is None


@pytest.mark.slow
def test_the_warm_up_precomputes_every_baseline_of_the_default_view(evaluated, monkeypatch):
    """`studio ui`'s warm-up fills the store's comparison cache for the suite Compare opens,
    each checkpoint as the baseline: the first view and a baseline change then compute
    nothing (issue 11)."""
    import evals.compare as compare_mod
    from studio.ui.compare_reads import default_view, precompute_default_view

    store, (base, a, b) = evaluated
    with store.transaction() as con:
        con.execute("DELETE FROM comparison_cache")
    assert default_view(store) == ("task", [base, a, b])        # task suites first
    assert precompute_default_view(store) == 6
    cached = store.query("SELECT baseline, candidate FROM comparison_cache WHERE suite = 'task'")
    assert len(cached) == 6 and {r["baseline"] for r in cached} == {base, a, b}

    def recomputed(*args, **kwargs):
        raise AssertionError("statistics recomputed instead of read from the cache")

    monkeypatch.setattr(compare_mod, "compare_results", recomputed)
    for baseline in (base, a, b):     # the page's call for each baseline is a read
        comps = compare_mod.compare_stored(store, "task", baseline,
                                           [c for c in (base, a, b) if c != baseline])
        assert [c.baseline for c in comps] == [baseline, baseline]
