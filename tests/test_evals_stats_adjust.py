"""Multiple-comparison adjustment (Holm, Benjamini-Hochberg) and the lm-evaluation-harness
paired-vs-unpaired case, with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import fisher_exact, norm

from evals.compare import compare_results
from evals.evaluate import EvalResult
from evals.generate import GenerationResult
from evals.stats import adjust_pvalues, mcnemar_exact, paired_compare
from evals.suites import Suite

P = [0.01, 0.04, 0.03, 0.005, 0.2]


def test_holm_and_bh_match_hand_computed_values():
    # Holm: sorted p times (m - rank + 1), running max: .005*5, .01*4, .03*3, max(.04*2, .09), .2
    assert adjust_pvalues(P, "holm") == pytest.approx([0.04, 0.09, 0.09, 0.025, 0.2])
    # BH: sorted p times m / rank, running min from the top: .025, .025, .05, .05, .2
    assert adjust_pvalues(P, "bh") == pytest.approx([0.025, 0.05, 0.05, 0.025, 0.2])
    assert adjust_pvalues(P, "none") == pytest.approx(P)
    assert adjust_pvalues([0.6, 0.9], "holm") == pytest.approx([1.0, 1.0])   # capped at 1
    assert len(adjust_pvalues([], "bh")) == 0
    with pytest.raises(ValueError, match="holm, bh, none"):
        adjust_pvalues(P, "bonferroni")


def test_holm_controls_familywise_error_and_bh_the_false_discovery_rate():
    """10 metrics, 4000 simulated families. All null: unadjusted p < .05 somewhere in ~40% of
    families, Holm in <= 5%. With 5 real effects, BH's share of false claims stays <= 5%.
    Binomial SE of a 5% rate over 4000 families: 0.0034, so the bounds allow 3 SE."""
    rng = np.random.default_rng(0)
    null = rng.random((4000, 10))
    raw_fwer = np.mean((null < 0.05).any(axis=1))
    holm_fwer = np.mean([(adjust_pvalues(p, "holm") < 0.05).any() for p in null])
    assert raw_fwer > 0.35 and holm_fwer <= 0.05 + 3 * 0.0034
    effects = np.hstack([rng.random((4000, 5)) * 0.002, rng.random((4000, 5))])   # 5 real, 5 null
    fdp = []
    for p in effects:
        rejected = adjust_pvalues(p, "bh") < 0.05
        fdp.append(rejected[5:].sum() / max(1, rejected.sum()))
    assert np.mean(fdp) <= 0.05 + 3 * 0.0034
    assert np.mean([(adjust_pvalues(p, "bh")[:5] < 0.05).all() for p in effects]) > 0.95


# lm-evaluation-harness #3831 / PR #3868: n = 220 paired pass/fail items where the unpaired
# test of scripts/model_comparator.py gives p = 0.080 and exact McNemar p = 0.008. This 2x2
# table reproduces both to the stated precision (found by search over all tables with n = 220):
BOTH, BASE_ONLY, CAND_ONLY, NEITHER = 68, 12, 30, 110     # baseline 80/220, candidate 98/220


def lm_eval_table() -> tuple[np.ndarray, np.ndarray]:
    base = np.array([1] * BOTH + [1] * BASE_ONLY + [0] * CAND_ONLY + [0] * NEITHER, float)
    cand = np.array([1] * BOTH + [0] * BASE_ONLY + [1] * CAND_ONLY + [0] * NEITHER, float)
    return base, cand


def unpaired_z_test(a: np.ndarray, b: np.ndarray) -> float:
    """lm-eval's model_comparator: Z = (acc1 - acc2) / sqrt(se1^2 + se2^2), with lm-eval's
    mean_stderr (sample standard deviation, ddof=1, over sqrt(n)); two-sided normal p."""
    se = [x.std(ddof=1) / np.sqrt(len(x)) for x in (a, b)]
    return float(2 * norm.sf(abs(b.mean() - a.mean()) / np.hypot(*se)))


def test_lm_eval_case_unpaired_misses_what_paired_mcnemar_finds():
    a, b = lm_eval_table()
    assert len(a) == 220
    assert round(unpaired_z_test(a, b), 3) == 0.080            # 0.08003: not significant
    p, regressed, improved = mcnemar_exact(a, b)
    assert (regressed, improved) == (12, 30) and round(p, 3) == 0.008    # 0.00792
    # Fisher's exact test on the two marginal proportions, another unpaired test, gives 0.099:
    # the pairing, not the choice of unpaired test, is what recovers the difference.
    fisher = fisher_exact([[80, 140], [98, 122]]).pvalue
    assert round(fisher, 3) == 0.099
    res = paired_compare(a, b, binary=True, n_boot=5000)
    assert res.p_value == pytest.approx(p) and res.ci_low > 0   # paired bootstrap CI agrees


def _result(base: dict, cand: dict) -> EvalResult:
    n = len(next(iter(base.values())))
    rows = [{"id": f"r{i}", "messages": [{"role": "user", "content": f"q{i}"}],
             "response": f"a{i}"} for i in range(n)]
    suite = Suite(name="s", rows=rows, metrics=list(base))
    outs = {k: {r["id"]: [r["response"]] for r in rows} for k in ("A", "B")}
    return EvalResult(suite=suite, models=[], generation=GenerationResult(outputs=outs, keys={}),
                      scores={"A": base, "B": cand})


def test_claims_and_gate_use_adjusted_p_values():
    a, b = lm_eval_table()
    rng = np.random.default_rng(3)
    noise = rng.random(220)
    flat = {"chrf": noise, "rouge_l": noise.copy()}
    same = {"chrf": noise + rng.normal(0, 0.01, 220), "rouge_l": noise + rng.normal(0, 0.01, 220)}
    # The lm-eval improvement survives Holm over three directed metrics (0.0079 * 3 = 0.024);
    # length has no direction and is no claim.
    comp = compare_results(_result({"exact_match": a, **flat, "length": noise},
                                   {"exact_match": b, **same, "length": noise}), "A", "B",
                           n_boot=2000)
    claims = {c["metric"]: c for c in comp.claims}
    assert set(claims) == {"exact_match", "chrf", "rouge_l"} and comp.adjust == "holm"
    em = claims["exact_match"]
    assert em["survives"] and em["direction"] == "better"
    assert em["p_adjusted"] == pytest.approx(3 * em["p_value"])
    # A regression with McNemar p = 0.041 (15 lost, 5 won) fails the gate unadjusted, but not
    # after Holm over three metrics (0.041 * 3 > 0.05): a chance finding among several looks.
    a2 = np.array([1] * 15 + [0] * 5 + [1] * 100 + [0] * 100, float)
    b2 = np.array([0] * 15 + [1] * 5 + [1] * 100 + [0] * 100, float)
    scores = ({"exact_match": a2, **flat}, {"exact_match": b2, **same})
    raw = compare_results(_result(*scores), "A", "B", n_boot=2000, adjust="none")
    holm = compare_results(_result(*scores), "A", "B", n_boot=2000, adjust="holm")
    bh = compare_results(_result(*scores), "A", "B", n_boot=2000, adjust="bh")
    assert raw.metrics[0]["p_mcnemar"] == pytest.approx(0.0414, abs=1e-4)
    assert raw.gate_failed and "exact_match" in raw.gate_reasons[0]
    assert not holm.gate_failed and not holm.claims[0]["survives"]
    assert bh.claims[0]["p_adjusted"] >= raw.claims[0]["p_adjusted"]


def test_judge_family_adjusts_several_comparisons_together():
    """Two suites (or candidates) judged as one family: each claim's p is adjusted over all
    directed metrics of both, so a claim that survives alone may not survive the family."""
    from evals.compare import judge_family

    a, b = lm_eval_table()
    rng = np.random.default_rng(4)
    noise = rng.random(220)
    comps = [compare_results(_result({"exact_match": a, "chrf": noise},
                                     {"exact_match": b, "chrf": noise + rng.normal(0, .01, 220)}),
                             "A", "B", n_boot=1000) for _ in range(2)]
    alone = comps[0].claims[0]["p_adjusted"]
    judge_family(comps, "holm")
    p = [c["p_value"] for comp in comps for c in comp.claims]
    assert [c["p_adjusted"] for comp in comps for c in comp.claims] == \
        pytest.approx(adjust_pvalues(p, "holm").tolist())
    assert comps[0].claims[0]["p_adjusted"] > alone
