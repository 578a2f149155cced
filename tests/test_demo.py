"""`studio demo --quick --no-ui --json` end to end: real model, real runs, consistent numbers.

Quick mode is too small for curation to win reliably, so this checks structure and internal
consistency (differences equal differences of means, n equals suite sizes, lineage, planted
noise accounting), not which run is better.
"""

from __future__ import annotations

import json
import math
import shutil

import pytest

from kernel.machine import describe, describe_line
from studio.cli import main
from studio.cli.demo_cmds import render_result, render_seeds


def _run_cli(args: list[str], capsys) -> dict:
    code = 0
    try:
        main(args)
    except SystemExit as exc:  # main() exits only on errors
        code = exc.code
    out = capsys.readouterr()
    assert code in (0, None), out.err[-3000:]
    assert out.out.lstrip().startswith("{"), (out.out[:500], out.err[-2000:])
    return json.loads(out.out)


def _seed_model_cache(ws, tiny_model) -> None:
    """Put the session's tiny model where the demo caches its base model (same fingerprint),
    so the test exercises the demo's reuse path instead of pretraining again."""
    from studio.demo import DemoSettings
    from training.tiny_model import TinyModelConfig

    cfg = TinyModelConfig(pretrain_steps=DemoSettings.preset(quick=True).pretrain_steps)
    if tiny_model.name.endswith(cfg.fingerprint()):
        shutil.copytree(tiny_model, ws / "models" / f"tiny-{cfg.fingerprint()}")


@pytest.mark.slow
@pytest.mark.vllm
def test_quick_demo_end_to_end(tmp_path, capsys, require_vllm, tiny_model):
    ws = tmp_path / "ws"
    _seed_model_cache(ws, tiny_model)
    r = _run_cli(["demo", "--workspace", str(ws), "--quick", "--no-ui", "--json", "--seed", "1"],
                 capsys)
    assert r["quick"] is True and r["seed"] == 1 and r["backend"] == "vllm"
    assert r["machine"] == describe()  # the CPU beside the figures (they repeat on it only)
    heldout = [json.loads(x) for x in
               (ws / "demo-data" / "seed-1" / "heldout.jsonl").read_text().splitlines()]
    general = (ws / "demo-data" / "seed-1" / "general.jsonl").read_text().splitlines()
    labels = ["base", "raw", "curated", "curated+replay"]
    assert list(r["checkpoints"]) == labels
    for role, n in (("task", len(heldout)), ("general", len(general))):
        assert list(r["scores"][role]) == labels
        for s in r["scores"][role].values():
            assert s["n"] == n
            assert s["low"] <= s["mean"] <= s["high"] and 0 <= s["mean"] <= 1
    task, gen = r["scores"]["task"], r["scores"]["general"]
    p = r["curated_vs_raw"]
    assert p["n"] == len(heldout)
    assert math.isclose(p["diff"], task["curated"]["mean"] - task["raw"]["mean"], abs_tol=1e-9)
    assert p["ci_low"] <= p["diff"] <= p["ci_high"] and 0 <= p["p_value"] <= 1
    # per task family: the suite's categories, adding up to the whole suite's difference
    by = p["by_category"]
    assert set(by) == {row["category"] for row in heldout}
    assert sum(b["n"] for b in by.values()) == p["n"]
    assert math.isclose(sum(b["n"] * b["diff"] for b in by.values()) / p["n"], p["diff"],
                        abs_tol=1e-9)
    # the claim's metric: the held-out suite sampled, raw and curated only; an item scores the
    # share of its samples that are right, so with 4 samples means are multiples of 1/(4 n)
    ps = r["curated_vs_raw_sampled"]
    assert ps["n"] == len(heldout) and set(ps["by_category"]) == set(by)
    assert ps["ci_low"] <= ps["diff"] <= ps["ci_high"]
    for mean in (ps["baseline_mean"], ps["candidate_mean"]):
        assert 0 <= mean <= 1 and math.isclose(mean * 4 * ps["n"], round(mean * 4 * ps["n"]),
                                                abs_tol=1e-6)
    assert r["suites"]["task_sampled"] == "demo-heldout-s1-sampled" and "task_sampled" not in r["scores"]
    report = render_result(r).splitlines()  # the human report of the same result
    assert any(line.startswith("  sampled (the claim's metric") for line in report)
    assert report[1].startswith(f"Machine: {describe_line(r['machine'])}; torch ")
    [tasks] = [line for line in report if line.startswith("  by task, raw -> curated: ")]
    assert all(task in tasks for task in by)
    for label in labels[1:]:
        f = r["forgetting"][label]
        assert math.isclose(f["diff"], gen[label]["mean"] - gen["base"]["mean"], abs_tol=1e-9)
    e = r["replay_effect"]
    assert math.isclose(e["diff"], gen["curated+replay"]["mean"] - gen["curated"]["mean"],
                        abs_tol=1e-9)
    # Curation: the curated version descends from the import, and its accounting adds up.
    assert r["lineage"][0] == r["versions"]["raw"] and r["lineage"][-1] == r["versions"]["curated"]
    q = r["curation"]["quality"]
    assert q["n_kept"] + q["n_removed"] == q["n_rows"]
    assert 0 < q["n_removed"] < q["n_rows"]
    assert q["false_positives"] <= q["n_removed"]
    # Attribution: one paired difference per curation step; its ends are the demo's own runs.
    for role, att in r["attribution"].items():
        means = [v["metrics"]["exact_match"] for v in att["versions"]]
        assert len(means) == 6 and len(att["steps"]) == 5
        for label, got in (("raw", means[0]), ("curated", means[-2]),
                           ("curated+replay", means[-1])):
            assert math.isclose(got, r["scores"][role][label]["mean"], abs_tol=1e-9)
        for step, before, after in zip(att["steps"], means[:-1], means[1:], strict=True):
            assert math.isclose(step["diff"], after - before, abs_tol=1e-9)
            assert step["low"] <= step["diff"] <= step["high"] and step["p_holm"] >= step["p"]
    assert [s["name"] for s in r["steps"]][0] == "base model"
    assert r["total_s"] >= sum(s["seconds"] for s in r["steps"]) - 1


@pytest.mark.slow
@pytest.mark.vllm
def test_quick_demo_over_two_seeds_pools_them_and_judges_the_targets(tmp_path, capsys,
                                                                     require_vllm, tiny_model):
    ws = tmp_path / "ws"
    _seed_model_cache(ws, tiny_model)
    r = _run_cli(["demo", "--workspace", str(ws), "--quick", "--no-ui", "--json",
                  "--seeds", "0,1"], capsys)
    assert r["seeds"] == [0, 1] and [s["seed"] for s in r["per_seed"]] == [0, 1]
    assert r["machine"] == describe()
    # both seeds are scored on the same suites (the first seed's), so they can be paired
    assert {s["suites"]["task"] for s in r["per_seed"]} == {"demo-heldout-s0"}
    assert all(s["curation"]["detector"]["method"] == "oof" for s in r["per_seed"])
    pooled = r["pooled"]["curated_vs_raw"]
    per_seed = [s["curated_vs_raw"]["diff"] for s in r["per_seed"]]
    assert math.isclose(pooled["diff"], sum(per_seed) / 2, abs_tol=1e-9)
    assert pooled["n_seeds_baseline"] == 2 and pooled["n"] == r["per_seed"][0]["curated_vs_raw"]["n"]
    assert pooled["ci_low"] <= pooled["diff"] <= pooled["ci_high"]
    assert [d["diff"] for d in pooled["per_seed"]] == pytest.approx(per_seed)
    # each step is attributed once over both seeds: the chains pool (same steps, same examples)
    for role, att in r["attribution_pooled"].items():
        assert "problem" not in att, (role, att.get("problem"))
        assert att["n_seeds"] == 2
        steps = [s["operation"] for s in att["steps"] if s["metric"] == "exact_match"]
        assert steps[0] == "exact dedup" and steps[-1] == "+ replay", steps
        assert all(len(s["per_seed"]) == 2 for s in att["steps"])
    assert set(r["attribution_pooled"]) == {"task", "general"}
    sampled = r["pooled"]["curated_vs_raw_sampled"]
    per_seed_sampled = [s["curated_vs_raw_sampled"]["diff"] for s in r["per_seed"]]
    assert math.isclose(sampled["diff"], sum(per_seed_sampled) / 2, abs_tol=1e-9)
    t = r["targets"]
    # the claim is judged on the sampled metric; greedy is pooled and shown beside it
    assert t["curated_beats_raw"]["metric"] == "curated_vs_raw_sampled"
    assert t["curated_beats_raw"]["met"] == (sampled["ci_low"] > 0)
    assert f"{pooled['diff']:+.3f}" in t["curated_beats_raw"]["detail"]
    report = render_seeds(r)
    assert "pooled curated - raw, held-out suite sampled:" in report
    assert "pooled curated - raw, held-out suite greedy:" in report
    for seed_result, f in zip(r["per_seed"], t["noisy_label_filter"]["per_seed"], strict=True):
        d = seed_result["curation"]["detector"]
        assert f["met"] == ((d["precision"] or 0) >= 0.9 and (d["recall"] or 0) >= 0.8)
        assert 0 <= d["n_flagged"] <= d["n_scored"] and d["n_bad"] > 0
        # out-of-fold runs: one per fold, each scoring rows it did not train on
        runs = seed_result["curation"]["fold_runs"]
        assert len(runs) == 2 and sum(x["n_scored"] for x in runs) == d["n_scored"]
        assert all(x["n_train"] + x["n_scored"] == d["n_scored"] for x in runs)
    assert t["noisy_label_filter"]["met"] == all(f["met"] for f in t["noisy_label_filter"]["per_seed"])
    for seed_result, e in zip(r["per_seed"], t["replay_reduces_forgetting"]["per_seed"], strict=True):
        assert e["met"] == (seed_result["replay_effect"]["ci_low"] > 0)
    for s in r["per_seed"]:  # every run's learning is checked, and a failure is said
        assert set(s["learning"]) == {"raw", "curated", "curated+replay"}
        for label, v in s["learning"].items():
            assert v["learned"] == (not v["problems"])
            assert any(f"{label} run did not learn" in n for n in s["notes"]) == (not v["learned"])


def test_demo_help_lists_the_options():
    from click.testing import CliRunner

    from studio.cli import _register_commands
    from studio.cli.common import cli

    _register_commands()
    out = CliRunner().invoke(cli, ["demo", "--help"]).output
    for flag in ("--workspace", "--no-ui", "--json", "--seed", "--seeds", "--quick"):
        assert flag in out
