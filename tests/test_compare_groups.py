"""Seed groups: `studio train --seeds` launches one real job per seed and records the group;
`studio compare --baseline-group/--candidate-group` compares groups through the real CLI."""

from __future__ import annotations

import json

import pytest

from kernel import jobs
from kernel.errors import NotFoundError, StudioError
from studio.cli import main as studio_main
from tests.helpers.cli import cli_json
from training import synthetic
from training.config import TrainConfig
from training.data import write_jsonl
from training.groups import group_runs, list_groups, parse_seeds
from training.start_run import launch_group


@pytest.fixture
def data_file(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_TORCH_THREADS", "1")  # inherited by the job processes
    path = tmp_path / "data.jsonl"
    write_jsonl(path, synthetic.generate(["repeat_twice"], 60, seed=1))
    return path


def test_launch_group_queues_one_run_per_seed_and_records_the_group(store, tiny_model, data_file):
    cfg = TrainConfig(base_model=str(tiny_model), data_file=str(data_file), max_steps=2,
                      name="cur")
    group_id, run_ids = launch_group(store, cfg, [0, 1, 2])
    try:
        runs = {r["id"]: r for r in jobs.list_runs(store)}
        assert [runs[r]["name"] for r in run_ids] == ["cur-seed0", "cur-seed1", "cur-seed2"]
        assert [jobs.get_run(store, r)["config"]["seed"] for r in run_ids] == [0, 1, 2]
        [group] = list_groups(store)
        assert group["id"] == group_id and group["name"] == "cur" and group["seeds"] == [0, 1, 2]
        by_name, by_id, by_glob = (group_runs(store, ref) for ref in ("cur", group_id, "cur-seed*"))
        assert [r["run_id"] for r in by_name] == run_ids == [r["run_id"] for r in by_id]
        assert [r["run_id"] for r in by_glob] == run_ids
        assert [r["seed"] for r in by_name] == [0, 1, 2]
        assert [r["run_id"] for r in group_runs(store, "cur-seed[01]")] == run_ids[:2]
        with pytest.raises(NotFoundError, match="'nope'"):
            group_runs(store, "nope")
    finally:
        for run_id in run_ids:
            if jobs.get_run(store, run_id)["state"] not in ("completed", "failed", "cancelled"):
                jobs.cancel(store, run_id, grace_s=2)


@pytest.mark.parametrize("text,message", [("", "at least one"), ("0,x", "integers"),
                                          ("1,2,1", "seed 1 is repeated")])
def test_bad_seeds_are_one_line_errors(text, message):
    with pytest.raises(StudioError, match=message):
        parse_seeds(text)


def test_a_bad_config_starts_no_run_and_records_no_group(store, tmp_path, capsys):
    cfg = TrainConfig(base_model=str(tmp_path / "no-model"), data_file=str(tmp_path / "x.jsonl"))
    with pytest.raises(StudioError):
        launch_group(store, cfg, [0, 1])
    assert store.query("SELECT count(*) AS n FROM runs")[0]["n"] == 0
    assert store.query("SELECT count(*) AS n FROM run_groups")[0]["n"] == 0
    ws = str(store.workspace.root)
    for args, message in [(["--seeds", "0,0"], "repeated"),
                          (["--seed", "1", "--seeds", "0,1"], "exclude each other")]:
        with pytest.raises(SystemExit) as exc:
            studio_main(["--workspace", ws, "train", "--base-model", "m", "--data-file", "x",
                         *args])
        assert exc.value.code == 1 and message in capsys.readouterr().err
    assert store.query("SELECT count(*) AS n FROM runs")[0]["n"] == 0



@pytest.mark.slow
def test_grouped_compare_through_the_cli(store, tiny_model, tmp_path, monkeypatch, capsys):
    """Two seed groups trained as real jobs, evaluated with HF, compared by a real CLI process."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from evals.suites import suite_from_file
    from evals.types import SamplingConfig

    monkeypatch.setenv("STUDIO_TORCH_THREADS", "1")
    ws = store.workspace.root
    for name, family in (("off", "swap_words"), ("on", "repeat_twice")):
        path = tmp_path / f"{name}.jsonl"
        write_jsonl(path, synthetic.generate([family], 64, seed=1))
        out = cli_json(capsys, ws, "train", "--base-model", str(tiny_model), "--data-file", str(path),
                  "--max-steps", "6", "--save-steps", "6", "--eval-steps", "6", "--lr", "2e-3",
                  "--name", name, "--seeds", "0,1", "--wait", "--json")
        assert [r["state"] for r in out["runs"]] == ["completed", "completed"], out
    suite_file = tmp_path / "suite.jsonl"
    write_jsonl(suite_file, [{**r, "id": f"t{i}"} for i, r in
                             enumerate(synthetic.generate(["repeat_twice"], 24, seed=7))])
    suite_from_file(store, "rep", suite_file, metrics=["exact_match", "chrf"],
                    sampling=SamplingConfig(max_new_tokens=8))
    studio = [sys.executable, "-c", "from studio.cli import main; main()", "-w", str(ws)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run(studio + ["compare", "--suite", "rep", "--baseline-group", "off",
                                    "--candidate-group", "on-seed*", "--adjust", "bh", "--json"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    comp = json.loads(proc.stdout)
    assert [r["name"] for r in comp["baseline_runs"]] == ["off-seed0", "off-seed1"]
    assert [r["name"] for r in comp["candidate_runs"]] == ["on-seed0", "on-seed1"]
    assert comp["adjust"] == "bh" and [c["metric"] for c in comp["claims"]] == ["exact_match", "chrf"]
    assert all(c["survives"] == (c["p_adjusted"] < 0.05) for c in comp["claims"])
    # The grouped difference is the mean of the per-checkpoint means `studio eval` reports.
    ckpts = [r["checkpoint"] for r in comp["baseline_runs"] + comp["candidate_runs"]]
    ev = cli_json(capsys, ws, "eval", "--suite", "rep", *[a for c in ckpts for a in ("--checkpoint", c)],
             "--json")
    for m in comp["metrics"]:
        means = [ev["results"][c][m["metric"]]["mean"] for c in ckpts]
        assert m["diff"] == pytest.approx((means[2] + means[3] - means[0] - means[1]) / 2)
        assert [p["seed"] for p in m["per_seed"]] == [0, 1]
        assert m["per_seed"][0]["diff"] == pytest.approx(means[2] - means[0])
        assert m["ci_low"] <= m["diff"] <= m["ci_high"] and m["n"] == 24
    text = subprocess.run(studio + ["compare", "--suite", "rep", "--baseline-group", "off",
                                    "--candidate-group", "on"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert text.returncode == 0 and "over seeds and examples" in text.stdout
    assert "per seed: seed 0" in text.stdout and "claims (Holm adjustment over 2 tests)" in text.stdout
    bad = subprocess.run(studio + ["compare", "--suite", "rep", "--baseline-group", "off",
                                   "--candidate", ckpts[0]], capture_output=True, text=True,
                         env=env, timeout=120)
    assert bad.returncode == 1 and "group with a group" in bad.stderr


def test_group_gate_fails_only_on_a_regression_beyond_seed_noise_and_margin():
    import numpy as np

    from evals.compare import GroupComparison, compare_group_scores, judge_family

    rng = np.random.default_rng(0)
    seed_shift = rng.normal(0, 0.03, (2, 3, 1))
    base = (rng.random((3, 300)) < 0.6 + seed_shift[0]).astype(float)
    worse = (rng.random((3, 300)) < 0.4 + seed_shift[1]).astype(float)
    noisy = (rng.random((3, 300)) < 0.6 + seed_shift[1]).astype(float)
    for cand, margin, fails in ((worse, 0.0, True), (worse, 0.5, False), (noisy, 0.0, False)):
        comp = GroupComparison("s", "A", "B", 300, margin)
        comp.metrics = compare_group_scores({"exact_match": base}, {"exact_match": cand},
                                            [0, 1, 2], [0, 1, 2], n_boot=500)
        judge_family([comp], "holm")
        assert comp.gate_failed is fails, (margin, comp.metrics[0]["ci_high"])
        if fails:
            diff = comp.metrics[0]["diff"]
            assert -0.25 < diff < -0.1
            assert f"exact_match: candidate worse by {diff:+.4f}" in comp.gate_reasons[0]
