"""Paired statistics for comparing two checkpoints on the same examples.

Why paired: both checkpoints answer the same prompts, so per-example differences remove the
between-example variance an unpaired test keeps (lm-eval's comparator is unpaired). Rows that
share a group (template, source) are not independent: the bootstrap then resamples whole groups
and the standard error is cluster-robust (Liang-Zeger CR1).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

Z95 = 1.959963984540054
Z80 = 0.8416212335729143          # power 0.8
MIN_N = 30
MIN_CLUSTERS = 10


@dataclass
class MeanCI:
    mean: float
    low: float
    high: float
    se: float
    n: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PairedResult:
    n: int
    n_groups: int
    diff: float                 # mean of candidate - baseline
    ci_low: float               # paired bootstrap 95% CI
    ci_high: float
    p_bootstrap: float
    se: float                   # cluster-robust when groups were given
    clustered: bool
    mde: float                  # minimum detectable effect at alpha .05, power .8
    p_mcnemar: float | None = None
    n_regressed: int | None = None    # binary: baseline pass, candidate fail
    n_improved: int | None = None
    warning: str | None = None

    @property
    def p_value(self) -> float:
        return self.p_mcnemar if self.p_mcnemar is not None else self.p_bootstrap

    def to_dict(self) -> dict:
        d = asdict(self)
        d["p_value"] = self.p_value
        return d


def _clusters(values: np.ndarray, groups) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster sums and sizes (each row is its own cluster when groups is None)."""
    if groups is None:
        return values.astype(float), np.ones(len(values))
    _, inv = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    sums = np.bincount(inv, weights=values)
    sizes = np.bincount(inv).astype(float)
    return sums, sizes


def cluster_se(values, groups=None) -> float:
    """Standard error of the mean; CR1 cluster-robust when groups are given."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n < 2:
        return float("nan")
    if groups is None:
        return float(x.std(ddof=1) / np.sqrt(n))
    resid_sums, _ = _clusters(x - x.mean(), groups)
    g = len(resid_sums)
    if g < 2:
        return float("nan")
    return float(np.sqrt(g / (g - 1) * np.sum(resid_sums**2)) / n)


def wilson(successes: float, n: int) -> tuple[float, float]:
    """Wilson score 95% interval for a proportion (stays inside [0, 1], sane at 0/n and n/n)."""
    if n == 0:
        return float("nan"), float("nan")
    p = successes / n
    denom = 1 + Z95**2 / n
    centre = (p + Z95**2 / (2 * n)) / denom
    half = Z95 * np.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / denom
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


MEAN_CI_BOOT = 2000   # resamples for a mean's CI: the percentiles move by < 0.005 at n = 400


def mean_ci(values, groups=None, binary: bool = False, n_boot: int = MEAN_CI_BOOT,
            seed: int = 0) -> MeanCI:
    """Mean with a 95% CI that stays inside the range the scores can take: Wilson for
    unclustered pass/fail scores, else the percentile bootstrap of the mean (whole clusters
    resampled when groups are given, as the paired CIs do). A resampled mean lies between the
    smallest and largest score, so a mean of values in [0, 1] never gets an interval past 1,
    whatever the metric. The normal interval mean +- 1.96 SE used before crossed the bounds
    near them (token_f1 [0.253, 1.080] with a cluster-robust SE over few categories, issue
    11); clipping it would have kept a symmetric interval where the sampling distribution is
    skewed against the bound. `se` stays the (cluster-robust) standard error."""
    x = np.asarray(values, dtype=float)
    m = float(x.mean()) if len(x) else float("nan")
    if groups is not None and len(set(map(str, groups))) < MIN_CLUSTERS:
        groups = None                      # too few clusters for a cluster-robust SE
    se = cluster_se(x, groups)
    if binary and groups is None and np.all((x == 0) | (x == 1)):
        low, high = wilson(float(x.sum()), len(x))
        return MeanCI(m, low, high, se, len(x))
    if len(x) < 2:
        return MeanCI(m, float("nan"), float("nan"), se, len(x))
    low, high = np.percentile(bootstrap_means(x, groups, n_boot=n_boot, seed=seed), [2.5, 97.5])
    return MeanCI(m, float(low), float(high), se, len(x))


def bootstrap_means(values, groups=None, n_boot: int = 10_000, seed: int = 0,
                    chunk: int = 500) -> np.ndarray:
    """Bootstrap distribution of the mean, resampling clusters; vectorized in chunks."""
    values = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    if groups is None:
        uniq, counts = np.unique(values, return_counts=True)
        if len(uniq) <= 64:
            # Few distinct values (pass/fail differences are -1/0/1): a resample is fully
            # described by how often each value is drawn, a multinomial: O(n_boot * k).
            draws = rng.multinomial(len(values), counts / len(values), size=n_boot)
            return draws @ uniq / len(values)
    sums, sizes = _clusters(values, groups)
    g = len(sums)
    equal = bool(np.all(sizes == sizes[0]))
    out = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        k = min(chunk, n_boot - start)
        idx = rng.integers(0, g, size=(k, g))
        total = sums[idx].sum(axis=1)
        out[start:start + k] = total / (g * sizes[0]) if equal else total / sizes[idx].sum(axis=1)
    return out


def mcnemar_exact(baseline_pass, candidate_pass) -> tuple[float, int, int]:
    """Exact two-sided McNemar p-value via the binomial on discordant pairs.

    Returns (p, n_regressed, n_improved) where regressed = baseline pass and candidate fail.
    """
    a = np.asarray(baseline_pass, dtype=bool)
    b = np.asarray(candidate_pass, dtype=bool)
    regressed = int(np.sum(a & ~b))
    improved = int(np.sum(~a & b))
    if regressed + improved == 0:
        return 1.0, 0, 0
    return binomial_half_two_sided(improved, regressed + improved), regressed, improved


def binomial_half_two_sided(k: int, n: int) -> float:
    """Exact two-sided p of k successes in n fair coin flips (scipy's binomtest(k, n, 0.5)):
    the distribution is symmetric, so p = 2 * P(X <= min(k, n - k)), capped at 1. Summed in
    log space (exact for any n); written out because importing scipy.stats takes seconds and
    the Compare page pays it on its first comparison."""
    low = min(k, n - k)
    logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2)
            for i in range(low + 1)]
    top = max(logs)
    return float(min(1.0, 2 * math.exp(top) * math.fsum(math.exp(v - top) for v in logs)))


def minimum_detectable_effect(se: float) -> float:
    """Smallest true difference detected with 80% power at two-sided alpha 0.05."""
    return float((Z95 + Z80) * se)


def paired_compare(baseline, candidate, groups=None, binary: bool = False,
                   n_boot: int = 10_000, seed: int = 0) -> PairedResult:
    """Candidate - baseline on paired per-example scores: bootstrap CI, p, SE, MDE, McNemar."""
    a = np.asarray(baseline, dtype=float)
    b = np.asarray(candidate, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired scores must align: {a.shape} vs {b.shape}")
    n = len(a)
    d = b - a
    diff = float(d.mean()) if n else float("nan")
    if n == 0:
        return PairedResult(0, 0, diff, diff, diff, 1.0, float("nan"), False, float("nan"),
                            warning="no examples")
    few_clusters = None
    if groups is not None and len(set(map(str, groups))) < MIN_CLUSTERS:
        # Cluster-robust inference needs many clusters; with a handful the cluster bootstrap
        # collapses to the few cluster means (a falsely narrow CI). Fall back to rows.
        few_clusters = (f"only {len(set(map(str, groups)))} groups (<{MIN_CLUSTERS}): "
                        "clustering ignored, rows treated as independent")
        groups = None
    boots = bootstrap_means(d, groups, n_boot=n_boot, seed=seed)
    low, high = (float(v) for v in np.percentile(boots, [2.5, 97.5]))
    # Shifted-null bootstrap p-value: how often a resample strays from the mean by |diff|.
    p_boot = float((1 + np.sum(np.abs(boots - diff) >= abs(diff) - 1e-12)) / (n_boot + 1))
    if diff == 0 and high == low:
        p_boot = 1.0
    se = cluster_se(d, groups)
    n_groups = n if groups is None else len(set(map(str, groups)))
    mde = minimum_detectable_effect(se) if np.isfinite(se) else float("nan")
    res = PairedResult(n, n_groups, diff, low, high, min(p_boot, 1.0), se, groups is not None, mde)
    if binary:
        res.p_mcnemar, res.n_regressed, res.n_improved = mcnemar_exact(a > 0.5, b > 0.5)
    res.warning = "; ".join(w for w in (few_clusters, small_n_warning(res)) if w) or None
    return res


def small_n_warning(res: PairedResult) -> str | None:
    """Say when n is too small to trust or to detect the observed difference."""
    if res.n < MIN_N:
        return f"n={res.n} is small (<{MIN_N}); CIs are rough"
    if res.diff != 0 and np.isfinite(res.mde) and abs(res.diff) < res.mde:
        need = int(np.ceil(res.n * (res.mde / abs(res.diff)) ** 2))
        return (f"n={res.n} cannot reliably detect a difference of {res.diff:+.3f} "
                f"(MDE {res.mde:.3f}); about n={need} would be needed")
    return None


def format_p(p: float | None, name: str = "p") -> str:
    """A p-value as people write it: "p < 0.001", "p = 0.02", "p = 0.34", "p = 1" (never
    "0.0000" or 5e-24 written out); the one formatter the CLI and the UI share."""
    if p is None or not np.isfinite(p):
        return f"{name} n/a"
    if p < 0.001:
        return f"{name} < 0.001"
    if p < 0.1:                                  # two significant digits: 0.049 stays 0.049
        return f"{name} = {p:.2g}"
    if p >= 0.995:
        return f"{name} = 1"
    return f"{name} = {p:.2f}"


# --- seed groups: two-level (seed x example) bootstrap -------------------------------------

@dataclass
class GroupedResult:
    """Candidate group - baseline group, counting seed variance and example variance."""

    n: int                      # examples (paired across every run of both groups)
    n_seeds_baseline: int
    n_seeds_candidate: int
    diff: float                 # mean over runs and examples, candidate - baseline
    ci_low: float               # 95% two-level bootstrap CI (calibrated, see grouped_compare)
    ci_high: float
    p_value: float              # Student t with Satterthwaite df on the variance components
    se: float
    df: float
    se_seed: float              # part of se due to which seeds were drawn
    se_example: float           # part of se due to which examples were drawn
    seed_sd_baseline: float     # spread of run means within each group
    seed_sd_candidate: float
    per_seed: list[dict]
    se_bootstrap_raw: float     # plain pigeonhole-bootstrap SE, before calibration
    warning: str | None = None
    paired_seeds: bool = False  # seeds matched: the per-seed difference was the unit

    def to_dict(self) -> dict:
        return asdict(self)


def _match_seeds(A: np.ndarray, B: np.ndarray, seeds_a, seeds_b
                 ) -> tuple[np.ndarray, np.ndarray]:
    """A and B with their rows in the same (sorted) seed order, for paired seeds."""
    if (seeds_a is None or seeds_b is None or len(set(seeds_a)) != len(seeds_a)
            or set(seeds_a) != set(seeds_b) or len(seeds_a) != A.shape[0]
            or len(seeds_b) != B.shape[0]):
        raise ValueError("paired seeds need the same distinct seeds in both groups, got "
                         f"{seeds_a} and {seeds_b}")
    order = sorted(seeds_a)
    ia = {s: i for i, s in enumerate(seeds_a)}
    ib = {s: i for i, s in enumerate(seeds_b)}
    return A[[ia[s] for s in order]], B[[ib[s] for s in order]]


def two_level_bootstrap(baseline, candidate, n_boot: int = 4000, seed: int = 0,
                        chunk: int = 500, paired_seeds: bool = False) -> np.ndarray:
    """Bootstrap replicates of mean(candidate) - mean(baseline) for runs x examples matrices.

    Each replicate draws the seeds (rows) of each group with replacement and the examples
    (columns) with replacement, the same examples for both groups (paired by example). Drawn
    as multinomial counts, so a replicate is two small matrix products: O(n_boot * S * n).
    """
    A = np.asarray(baseline, dtype=float)
    B = np.asarray(candidate, dtype=float)
    rng = np.random.default_rng(seed)
    sa, n = A.shape
    sb = B.shape[0]
    out = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        k = min(chunk, n_boot - start)
        wa = rng.multinomial(sa, np.full(sa, 1 / sa), size=k) / sa
        wb = wa if paired_seeds else rng.multinomial(sb, np.full(sb, 1 / sb), size=k) / sb
        we = rng.multinomial(n, np.full(n, 1 / n), size=k) / n
        out[start:start + k] = np.einsum("bi,bi->b", wb @ B - wa @ A, we)
    return out


def seed_example_variance(baseline, candidate, paired_seeds: bool = False
                          ) -> tuple[float, float, float]:
    """Unbiased (method-of-moments) variance of the grouped difference: (seed part, example
    part, Satterthwaite df).

    Model per group: score = mean + seed effect + example effect + seed x example noise. The
    spread of a group's run means over its S seeds, divided by S, estimates exactly that group's
    seed part (seed effects plus the noise averaged over the n examples). The spread over
    examples of the paired, seed-averaged difference estimates the example part but also holds
    the seed x example noise a second time; that is subtracted using the two-way residual mean
    square of each group.
    """
    A = np.asarray(baseline, dtype=float)
    B = np.asarray(candidate, dtype=float)
    n = A.shape[1]
    seed_parts, noise = [], 0.0
    # paired seeds (rows matched): one group, the per-seed differences B - A
    for Y in ((B - A,) if paired_seeds else (A, B)):
        s = Y.shape[0]
        rows, cols = Y.mean(axis=1), Y.mean(axis=0)
        resid = Y - rows[:, None] - cols[None, :] + Y.mean()
        noise += float(np.sum(resid**2)) / ((s - 1) * (n - 1)) / s
        seed_parts.append((float(rows.var(ddof=1)) / s, s - 1))
    d = B.mean(axis=0) - A.mean(axis=0)
    example = max(0.0, float(d.var(ddof=1)) - noise) / n
    seed_var = sum(v for v, _ in seed_parts)
    total = seed_var + example
    denom = sum(v * v / df for v, df in seed_parts) + example**2 / (n - 1)
    df = total**2 / denom if denom > 0 else float("inf")
    return seed_var, example, df


def _per_seed(A: np.ndarray, B: np.ndarray, seeds_a, seeds_b) -> list[dict]:
    """Per-seed differences: matched by seed when both groups ran the same seeds, else each
    candidate run against the baseline group's mean."""
    ma, mb = A.mean(axis=1), B.mean(axis=1)

    def distinct(seeds) -> bool:
        return seeds is not None and None not in seeds and len(set(seeds)) == len(seeds)

    if distinct(seeds_a) and distinct(seeds_b) and set(seeds_a) == set(seeds_b):
        where = {s: i for i, s in enumerate(seeds_a)}
        return [{"seed": s, "baseline": float(ma[where[s]]), "candidate": float(mb[j]),
                 "diff": float(mb[j] - ma[where[s]])} for j, s in enumerate(seeds_b)]
    seeds_b = list(seeds_b) if seeds_b is not None else [None] * len(mb)
    return [{"seed": s, "baseline": float(ma.mean()), "candidate": float(mb[j]),
             "diff": float(mb[j] - ma.mean())} for j, s in enumerate(seeds_b)]


def grouped_compare(baseline, candidate, baseline_seeds=None, candidate_seeds=None,
                    n_boot: int = 4000, seed: int = 0, paired_seeds: bool = False,
                    binary: bool = False) -> GroupedResult:
    """Candidate group - baseline group on runs x examples score matrices (same examples).

    The 95% CI is the two-level bootstrap (seeds, then examples, paired), calibrated because the
    plain one is wrong in both directions (Owen 2007, pigeonhole bootstrap; and checked by
    simulation in tests/test_evals_stats_groups.py): resampling S seeds understates seed
    variance by (S-1)/S, and seed x example noise is counted twice (once in the run means, once
    in the examples shared by every run). Its quantiles are therefore rescaled to the unbiased
    variance of `seed_example_variance` and widened from normal to Student t with Satterthwaite
    df, which matter with 2-5 seeds. p is the matching t test, and the CI is never narrower
    than that test's t interval on either side: it excludes 0 only where p < 0.05.

    `paired_seeds`: the two groups ran the same seeds and a seed is a shared draw for both
    (e.g. the demo, where each seed makes its own noisy data that raw and curated both train
    on): the unit is then the per-seed difference, and its spread is the seed variance
    (seeds resampled jointly). Independent seeds (the default) add both groups' spreads.

    `binary`: the scores are 0/1 (exact match, pass/fail), so the difference lies in [-1, 1]
    and so does the reported CI (a t interval over 3 seeds reached +1.41 in the demo).
    """
    from scipy.stats import t as student_t

    A = np.atleast_2d(np.asarray(baseline, dtype=float))
    B = np.atleast_2d(np.asarray(candidate, dtype=float))
    if paired_seeds:
        A, B = _match_seeds(A, B, baseline_seeds, candidate_seeds)
        baseline_seeds = candidate_seeds = sorted(baseline_seeds)
    if A.shape[1] != B.shape[1]:
        raise ValueError(f"groups must score the same examples: {A.shape[1]} vs {B.shape[1]}")
    if min(A.shape[0], B.shape[0]) < 2 or A.shape[1] < 2:
        raise ValueError("each group needs at least 2 runs (seeds) and 2 examples to measure "
                         f"seed variance; got {A.shape[0]} and {B.shape[0]} runs")
    n = A.shape[1]
    diff = float(B.mean() - A.mean())
    seed_var, example_var, df = seed_example_variance(A, B, paired_seeds)
    var = seed_var + example_var
    se = float(np.sqrt(var))
    boots = two_level_bootstrap(A, B, n_boot=n_boot, seed=seed, paired_seeds=paired_seeds)
    raw_sd = float(boots.std(ddof=1))
    if se == 0:
        low = high = diff
        p = 1.0 if diff == 0 else 0.0
    else:
        half = float(student_t.ppf(0.975, df)) * se  # the t interval's half width
        low, high = diff - half, diff + half
        if raw_sd > 0:
            q = np.percentile(boots - boots.mean(), [2.5, 97.5]) * (se / raw_sd) * (half / (Z95 * se))
            # never inside the t interval: with a handful of seeds the bootstrap's shape rests
            # on a handful of per-seed values, and a skewed one put the CI above 0 while the
            # t test gave p = 0.06 (the demo's 6 seeds); so the CI excludes 0 only if p < 0.05
            low, high = min(low, diff + float(q[0])), max(high, diff + float(q[1]))
        p = float(2 * student_t.sf(abs(diff) / se, df))
    if binary:
        low, high = max(low, -1.0), min(high, 1.0)
    per_seed = _per_seed(A, B, baseline_seeds, candidate_seeds)
    warning = None
    if min(A.shape[0], B.shape[0]) < 3:
        warning = (f"only {min(A.shape[0], B.shape[0])} seeds in a group: the seed variance "
                   f"rests on {df:.1f} degrees of freedom, so the CI is wide")
    elif n < MIN_N:
        warning = f"n={n} examples is small (<{MIN_N}); CIs are rough"
    return GroupedResult(
        n=n, n_seeds_baseline=A.shape[0], n_seeds_candidate=B.shape[0], diff=diff,
        ci_low=low, ci_high=high, p_value=p, se=se, df=float(df), se_seed=float(np.sqrt(seed_var)),
        se_example=float(np.sqrt(example_var)),
        seed_sd_baseline=float(A.mean(axis=1).std(ddof=1)),
        seed_sd_candidate=float(B.mean(axis=1).std(ddof=1)), per_seed=per_seed,
        se_bootstrap_raw=raw_sd, warning=warning, paired_seeds=paired_seeds)


# --- multiple comparisons ---------------------------------------------------------------------

ADJUST_METHODS = ("holm", "bh", "none")


def adjust_pvalues(pvalues, method: str = "holm") -> np.ndarray:
    """p-values adjusted for looking at several metrics, suites or candidates at once.

    holm: Holm's step-down, controls the family-wise error rate (any false claim) under any
    dependence. bh: Benjamini-Hochberg step-up, controls the false discovery rate (the share
    of false claims; valid for independent or positively dependent tests). none: unchanged.
    """
    p = np.asarray(pvalues, dtype=float)
    m = len(p)
    if method not in ADJUST_METHODS:
        raise ValueError(f"adjust method {method!r}: expected one of {', '.join(ADJUST_METHODS)}")
    if method == "none" or m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    if method == "holm":
        adj = np.maximum.accumulate((m - np.arange(m)) * ranked)
    else:
        adj = np.minimum.accumulate(m / np.arange(m, 0, -1) * ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return out
