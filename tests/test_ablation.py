"""Ablation of curation steps: Holm adjustment, the seeds x examples bootstrap, planning errors,
and a CI-sized real ablation (3 versions, one seed, on the tiny model) through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from curation.browse import filter_version
from curation.dedup import dedup
from curation.importer import import_file
from evals import ablation as A
from evals.suites import Suite, save_suite
from kernel.errors import StudioError
from studio.cli import main as studio_main
from training import synthetic
from training.data import write_jsonl
from training.groups import run_groups_by_run

N_WRONG = 40


def test_holm_matches_a_hand_computed_example():
    # sorted: 0.01*3 = 0.03; 0.03*2 = 0.06; 0.04*1 = 0.04 -> kept monotone at 0.06
    assert A.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert A.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert A.holm([]) == []


def test_bootstrap_over_seeds_widens_the_ci_when_seeds_disagree():
    rng = np.random.default_rng(0)
    steady = A.seed_example_bootstrap(np.ones((3, 50)))
    assert (steady["diff"], steady["low"], steady["high"]) == (1.0, 1.0, 1.0) and steady["p"] < 0.001
    null = A.seed_example_bootstrap(rng.choice([-1.0, 0.0, 1.0], size=(3, 400)))
    assert null["low"] < 0 < null["high"] and null["p"] > 0.05
    # Seed 0 says +0.5 everywhere, seed 1 says -0.5: the examples agree within a seed, so only
    # resampling seeds reveals that the effect is not reproducible.
    split = np.vstack([np.full(200, 0.5), np.full(200, -0.5)])
    both = A.seed_example_bootstrap(split)
    rows_only = A.seed_example_bootstrap(split.mean(axis=0))
    assert rows_only["high"] - rows_only["low"] == 0.0
    assert both["low"] <= -0.4 and both["high"] >= 0.4 and both["n_seeds"] == 2
    assert A.verdict(0.2, 0.01, True) == "helped" and A.verdict(0.2, 0.01, False) == "hurt"
    assert A.verdict(-0.2, 0.2, True) == "no measurable effect"


@pytest.fixture
def chain(store, tmp_path):
    """support: v1 import (N_WRONG answers replaced by 'no') -> v2 filter them out -> v3 exact
    dedup; plus a separate held-out suite of new instructions."""
    rows = synthetic.generate(["repeat_twice"], 160, seed=7)
    for i, r in enumerate(rows):
        r["instruction"] += f" (item {i})"
    for r in rows[:N_WRONG]:
        r["response"] = "no"
    write_jsonl(tmp_path / "s.jsonl", rows)
    import_file(store, tmp_path / "s.jsonl", "support")
    filter_version(store, "support@v1", "resp_chars>=3")
    dedup(store, "support@v2", method="exact")
    held = synthetic.generate(["repeat_twice"], 30, seed=99)
    save_suite(store, Suite(name="held", metrics=["exact_match"],
                            rows=[{**r, "id": f"h{i}"} for i, r in enumerate(held)]))
    return "support@v3"


def test_plan_walks_the_lineage_and_rejects_bad_steps(store, chain):
    assert [s["version"] for s in A.plan(store, chain)] == ["v1", "v2", "v3"]
    assert [s["version"] for s in A.plan(store, chain, ["v1", "v3"])] == ["v1", "v3"]
    with pytest.raises(StudioError, match="--steps v9: not on the lineage of support@v3"):
        A.plan(store, chain, ["v1", "v9"])
    with pytest.raises(StudioError, match="needs at least two versions"):
        A.plan(store, "support@v1")


@pytest.mark.slow
def test_cli_ablation_reports_each_step_with_holm_adjusted_paired_differences(
        store, chain, tiny_model, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("STUDIO_TORCH_THREADS", "1")
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"base_model": str(tiny_model), "max_steps": 12,
                                      "learning_rate": 2e-3, "save_steps": 12, "eval_steps": 12,
                                      "eval_fraction": 0.0, "report_to": "none"}))
    capsys.readouterr()
    studio_main(["--workspace", str(store.workspace.root), "ablate", chain, "--config",
                 str(config), "--suite", "held", "--seeds", "3", "--json"])
    rep = json.loads(capsys.readouterr().out)

    assert [v["ref"] for v in rep["versions"]] == ["support@v1", "support@v2", "support@v3"]
    assert rep["seeds"] == [3] and rep["n_examples"] == 30
    filt, ded = rep["steps"]
    assert (filt["operation"], filt["train_rows_removed"]) == ("filter", N_WRONG)
    assert (ded["operation"], ded["train_rows_removed"]) == ("dedup", 0)

    # Every run trained with identical settings except dataset and seed.
    ab = A.get(store, rep["ablation"])
    assert len(ab["runs"]) == 3
    configs = [json.loads(store.query("SELECT config FROM runs WHERE id = ?", [r["run_id"]])[0]
                          ["config"]) for r in ab["runs"]]
    varying = {k for c in configs for k in c if c[k] != configs[0][k]}
    assert varying == {"dataset", "name"} and {c["seed"] for c in configs} == {3}
    # The ablation is also a run group (kind 'ablation', its id), listed like a sweep.
    groups = run_groups_by_run(store)
    assert [(g["group_id"], g["kind"], g["params"]) for r in ab["runs"]
            for g in groups[r["run_id"]]] == [(rep["ablation"], "ablation",
                                               {"dataset": r["version_ref"]}) for r in ab["runs"]]

    # The reported difference is the seed-averaged paired difference of the stored scores.
    def mean_score(version):
        vals = [store.query("SELECT avg(value) AS m FROM eval_scores WHERE suite = 'held' AND "
                            "checkpoint = ?", [c])[0]["m"]
                for c in next(v for v in rep["versions"] if v["ref"] == version)["checkpoints"]]
        return sum(vals) / len(vals)

    for step in rep["steps"]:
        assert step["diff"] == pytest.approx(mean_score(step["step"]) - mean_score(step["vs"]))
        assert step["low"] <= step["diff"] <= step["high"] and step["p_holm"] >= step["p"]
        assert step["verdict"] == A.verdict(step["diff"], step["p_holm"], True)

    capsys.readouterr()
    studio_main(["--workspace", str(store.workspace.root), "ablation", rep["ablation"]])
    text = capsys.readouterr().out
    assert "v1 -> v2" in text and "filter" in text and "p (Holm)" in text
