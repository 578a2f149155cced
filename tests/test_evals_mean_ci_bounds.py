"""A mean's 95% CI stays inside the range its scores can take (issue 11: Compare showed a
token_f1 CI of [0.253, 1.080]; a mean of values in [0, 1] cannot exceed 1)."""

from __future__ import annotations

import math

import numpy as np

from evals.stats import Z95, cluster_se, mean_ci


def near_one_clustered(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """token_f1-like scores: most categories answer perfectly, two do badly (12 categories)."""
    rng = np.random.default_rng(seed)
    groups = np.repeat([f"c{i}" for i in range(12)], 25)
    x = np.ones(len(groups))
    x[groups == "c0"] = rng.uniform(0.0, 0.2, 25)
    x[groups == "c1"] = rng.uniform(0.0, 0.3, 25)
    return x, groups


def test_clustered_ci_near_the_bound_stays_inside_it():
    x, groups = near_one_clustered()
    m = x.mean()
    normal_high = m + Z95 * cluster_se(x, groups)
    assert normal_high > 1.0                 # the old interval crossed the bound here
    ci = mean_ci(x, groups)
    assert 0.0 <= ci.low < ci.mean < ci.high <= 1.0, ci
    assert ci.mean == m and ci.se == cluster_se(x, groups)


def test_unclustered_continuous_ci_stays_inside_the_observed_range():
    x = np.array([1.0] * 9 + [0.5])
    ci = mean_ci(x)
    assert 0.5 <= ci.low < ci.mean < ci.high <= 1.0, ci
    assert mean_ci(x) == ci                  # deterministic (fixed seed): cacheable
    one = mean_ci([0.7])
    assert math.isnan(one.low) and math.isnan(one.high)   # n = 1: no interval


def test_bootstrap_mean_ci_covers_about_95_percent():
    """Scores in [0, 1] skewed against 1 (Beta(9, 1), mean 0.9): over 400 samples of 40 the
    interval holds the true mean about 95% of the time and never leaves [0, 1]."""
    rng = np.random.default_rng(1)
    hits, inside = 0, True
    for _ in range(400):
        ci = mean_ci(rng.beta(9, 1, 40), n_boot=1000, seed=int(rng.integers(1 << 30)))
        hits += ci.low <= 0.9 <= ci.high
        inside &= 0.0 <= ci.low <= ci.high <= 1.0
    assert inside
    assert 0.90 <= hits / 400 <= 0.98, hits / 400
