"""Paired statistics against known cases: planted regressions, identical runs, hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evals.stats import (
    cluster_se,
    mcnemar_exact,
    mean_ci,
    minimum_detectable_effect,
    paired_compare,
)


def test_mcnemar_matches_hand_computed_binomial():
    # 8 regressions (A pass, B fail), 2 improvements: p = 2 * P(X <= 2), X ~ Bin(10, .5).
    a = [1] * 8 + [0] * 2 + [1] * 20
    b = [0] * 8 + [1] * 2 + [1] * 20
    p, reg, imp = mcnemar_exact(a, b)
    hand = 2 * sum(math.comb(10, k) for k in range(3)) / 2**10
    assert (reg, imp) == (8, 2)
    assert p == pytest.approx(hand)          # 0.109375
    assert mcnemar_exact([1, 0], [1, 0]) == (1.0, 0, 0)


def test_planted_regression_is_found():
    rng = np.random.default_rng(1)
    a = (rng.random(400) < 0.8).astype(float)
    b = a.copy()
    flip = rng.choice(np.flatnonzero(a == 1), 60, replace=False)   # plant 60 regressions
    b[flip] = 0
    res = paired_compare(a, b, binary=True, n_boot=2000)
    assert res.diff == pytest.approx(-60 / 400)
    assert res.ci_high < 0 and res.ci_low < res.diff < res.ci_high
    assert res.p_mcnemar < 1e-10 and res.n_regressed == 60 and res.n_improved == 0
    assert res.p_bootstrap < 0.01


def test_identical_checkpoints_ci_is_zero():
    a = np.random.default_rng(2).random(200)
    res = paired_compare(a, a.copy(), n_boot=1000)
    assert res.diff == 0 and res.ci_low == 0 and res.ci_high == 0
    assert res.p_bootstrap == 1.0


def test_no_real_difference_ci_covers_zero():
    rng = np.random.default_rng(3)
    a = rng.random(300)
    b = a + rng.normal(0, 0.1, 300)          # noise only, no shift
    b -= (b - a).mean()                      # exactly zero mean difference
    res = paired_compare(a, b, n_boot=2000)
    assert res.ci_low < 0 < res.ci_high
    assert res.p_bootstrap > 0.5


def test_cluster_se_larger_when_rows_share_groups():
    rng = np.random.default_rng(4)
    group_effect = np.repeat(rng.normal(0, 1, 20), 10)   # 20 templates x 10 rows
    d = group_effect + rng.normal(0, 0.1, 200)
    groups = np.repeat(np.arange(20), 10)
    naive, clustered = cluster_se(d), cluster_se(d, groups)
    assert clustered > 2.5 * naive
    # Singleton clusters reduce exactly to the usual SE (CR1's n/(n-1) matches ddof=1).
    assert cluster_se(d, np.arange(200)) == pytest.approx(naive, rel=1e-9)
    res = paired_compare(np.zeros(200), d, groups=groups, n_boot=2000)
    assert res.clustered and res.n_groups == 20
    assert (res.ci_high - res.ci_low) > 2 * 1.96 * naive   # wider than the naive CI


def test_small_n_and_mde_warnings():
    res = paired_compare([1, 0, 1, 1], [1, 1, 0, 1], binary=True, n_boot=500)
    assert res.n == 4 and "small" in res.warning
    rng = np.random.default_rng(5)
    a = rng.random(100)
    b = a + 0.01 + rng.normal(0, 0.2, 100)     # tiny effect, large noise
    res = paired_compare(a, b, n_boot=500)
    assert res.mde == pytest.approx(minimum_detectable_effect(res.se))
    assert res.warning and "cannot reliably detect" in res.warning


def test_mean_ci_and_shape_check():
    m = mean_ci([0, 1, 0, 1])
    assert m.mean == 0.5 and m.low < 0.5 < m.high and m.n == 4
    with pytest.raises(ValueError):
        paired_compare([1, 2], [1])


def test_few_clusters_fall_back_to_rows_with_warning():
    rng = np.random.default_rng(6)
    a, b = rng.random(60), rng.random(60) + 0.1
    two = np.repeat(["t0", "t1"], 30)
    res = paired_compare(a, b, groups=two, n_boot=2000)
    plain = paired_compare(a, b, n_boot=2000)
    assert not res.clustered and "only 2 groups" in res.warning
    assert (res.ci_low, res.ci_high) == (plain.ci_low, plain.ci_high)


def test_binary_mean_ci_is_wilson_inside_unit_interval():
    m = mean_ci([1, 0], binary=True)
    assert 0 <= m.low < 0.5 < m.high <= 1
    zero = mean_ci([0] * 10, binary=True)
    # Wilson for 0/10: upper = z^2/n / (1 + z^2/n) = 0.2775
    assert zero.low == 0 and zero.high == pytest.approx(0.2775, abs=1e-4)
