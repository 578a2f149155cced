"""Step attribution pooled over seeds (evals.ablation.pool_chains, the multi-seed demo's
`attribution_pooled`): on constructed chains with a known answer, one seed's verdict can be
noise that pooling over seeds x examples removes, a real gain stays significant, and chains that
cannot be pooled (other steps, other examples) are refused with the reason."""

from __future__ import annotations

import numpy as np
import pytest

from evals.ablation import pool_chains, step_differences
from kernel.errors import StudioError
from studio.cli.demo_cmds import render_seeds
from studio.demo.attribution import demo_chain, pool_attribution, pooled_attribution_lines

N = 200
IDS = [f"h{i}" for i in range(N)]


def _flip(a: np.ndarray, k: int, to: float, rng) -> np.ndarray:
    """a with k of its examples that are not `to` set to `to`."""
    out = a.copy()
    out[rng.choice(np.flatnonzero(out != to), size=k, replace=False)] = to
    return out


def _seed_chain(seed: int, dedup_shift: int) -> dict:
    """What attribute_chain returns for one seed's demo chain: raw -> exact dedup (moves
    `dedup_shift` examples: - to fail, + to pass) -> loss filter (+60 passes) -> + replay."""
    rng = np.random.default_rng(seed)
    raw = (rng.random(N) < 0.4).astype(float)
    dedup = _flip(raw, abs(dedup_shift), 1.0 if dedup_shift > 0 else 0.0, rng) if dedup_shift \
        else raw.copy()
    filt = _flip(dedup, 60, 1.0, rng)
    replay = filt.copy()
    chain = demo_chain(f"d{seed}@v1", 100, [{"name": "exact dedup", "ref": f"d{seed}@v2",
                                              "n_kept": 90 + seed},
                                             {"name": "loss filter", "ref": f"d{seed}@v3",
                                              "n_kept": 70}],
                       f"mix{seed}@v1", 85)
    scores = {c["ref"]: [{"exact_match": m}]
              for c, m in zip(chain, [raw, dedup, filt, replay], strict=True)}
    return {"suite": "held", "n_examples": N, "example_ids": list(IDS),
            **step_differences(chain, scores, ["exact_match"]),
            "per_example": {ref: [{"exact_match": s["exact_match"].tolist()} for s in per]
                            for ref, per in scores.items()}}


def _by_op(rep: dict) -> dict:
    return {s["operation"]: s for s in rep["steps"]}


def test_pooling_removes_a_one_seed_verdict_and_keeps_a_real_gain():
    seeds = [_seed_chain(0, -12), _seed_chain(1, +12), _seed_chain(2, 0)]
    # Alone, seed 0 says exact dedup hurt and seed 1 says it helped (each significant) ...
    assert _by_op(seeds[0])["exact dedup"]["verdict"] == "hurt"
    assert _by_op(seeds[1])["exact dedup"]["verdict"] == "helped"
    pooled = pool_chains(seeds)
    steps = _by_op(pooled)
    dedup = steps["exact dedup"]
    # ... pooled over 3 seeds x 200 examples its effect is exactly 0: no measurable effect.
    assert dedup["diff"] == pytest.approx(0.0, abs=1e-12)
    assert dedup["verdict"] == "no measurable effect" and dedup["low"] < 0 < dedup["high"]
    assert dedup["per_seed"] == pytest.approx([-0.06, 0.06, 0.0])
    assert dedup["n_seeds"] == 3 and dedup["n"] == N
    # The loss filter gains 60/200 on every seed: helped, the CI well above 0.
    filt = steps["loss filter"]
    assert filt["diff"] == pytest.approx(0.3) and filt["verdict"] == "helped"
    assert filt["low"] > 0.2 and filt["per_seed"] == pytest.approx([0.3, 0.3, 0.3])
    assert steps["+ replay"]["diff"] == 0 and steps["+ replay"]["verdict"] == \
        "no measurable effect"
    # Holm across the three steps; rows removed: the mean over seeds, and each seed's.
    assert all(s["p_holm"] >= s["p"] for s in pooled["steps"])
    assert dedup["train_rows_removed_per_seed"] == [10, 9, 8] and dedup["train_rows_removed"] == 9
    assert pooled["n_seeds"] == 3 and pooled["versions"][1]["ref"] == ["d0@v2", "d1@v2", "d2@v2"]
    assert pooled["versions"][2]["metrics"]["exact_match"] == pytest.approx(np.mean(
        [np.mean(s["per_example"][f"d{k}@v3"][0]["exact_match"]) for k, s in enumerate(seeds)]))


def test_chains_that_cannot_be_pooled_are_refused_naming_why():
    a, b = _seed_chain(0, 0), _seed_chain(1, 0)
    other_examples = {**b, "example_ids": [f"x{i}" for i in range(N)]}
    with pytest.raises(StudioError, match="chain 2 is not scored on the same examples"):
        pool_chains([a, other_examples])
    other_steps = {**b, "steps": b["steps"][1:]}
    with pytest.raises(StudioError, match="chain 2 has other steps than chain 1"):
        pool_chains([a, other_steps])
    # The demo's report says so instead of pooling (per suite role).
    pooled = pool_attribution([{"task": a, "general": a}, {"task": b, "general": other_examples}])
    assert "steps" in pooled["task"] and "not scored on the same examples" in \
        pooled["general"]["problem"]
    text = "\n".join(pooled_attribution_lines(pooled))
    assert "general suite: not pooled: pool: chain 2 is not scored" in text


def test_the_multi_seed_report_prints_the_pooled_table():
    seeds = [_seed_chain(0, -12), _seed_chain(1, +12), _seed_chain(2, 0)]
    pooled = pool_attribution([{"task": s} for s in seeds])
    lines = pooled_attribution_lines(pooled)
    assert lines[0].startswith("task suite held (3 seeds x n = 200)")
    [dedup] = [line for line in lines if "exact dedup" in line]
    assert "-9 rows" in dedup and "no measurable effect" in dedup
    assert dedup.endswith("(per seed -0.06 +0.06 +0.00)")
    [filt] = [line for line in lines if "loss filter" in line]
    assert "+0.300" in filt and "helped" in filt
    g = {"diff": 0.1, "ci_low": 0.0, "ci_high": 0.2, "p_value": 0.05, "n_seeds_baseline": 3,
         "n": N, "se_seed": 0.01, "se_example": 0.02}
    text = render_seeds({"seeds": [0, 1, 2], "total_s": 60, "per_seed": [],
                         "pooled": {"curated_vs_raw": g, "replay_effect": g}, "targets": {},
                         "attribution_pooled": pooled})
    assert "Which step made the difference (exact match), pooled over seeds:" in text
    assert dedup in text
