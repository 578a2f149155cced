"""Bench: compare two checkpoints on 10k examples with paired-bootstrap CIs (10k resamples).

    .venv/bin/python bench/bench_compare.py [--n 10000] [--boot 10000]

Prints the time of the vectorized statistics (plain and clustered), of a full
`compare_results` (3 metrics, McNemar, regression lists, breakdown), and a baseline measured in
the same run: a per-resample Python loop bootstrap (timed on a slice, extrapolated), as ratio.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def naive_bootstrap(d: np.ndarray, n_boot: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.array([d[rng.integers(0, len(d), len(d))].mean() for _ in range(n_boot)])


def synthetic_result(n: int, seed: int = 0):
    from evals.evaluate import EvalResult
    from evals.generate import GenerationResult
    from evals.suites import Suite

    rng = np.random.default_rng(seed)
    rows = [{"id": f"r{i}", "messages": [{"role": "user", "content": f"q{i}"},
                                         {"role": "assistant", "content": f"a{i}"}],
             "response": f"a{i}", "category": f"c{i % 7}", "group": f"t{i % 50}"}
            for i in range(n)]
    suite = Suite(name="bench", rows=rows, metrics=["exact_match", "chrf", "length"],
                  group_by="template")
    a_em = (rng.random(n) < 0.70).astype(float)
    b_em = np.where(rng.random(n) < 0.05, 1 - a_em, a_em)
    a_chrf, b_chrf = rng.random(n), rng.random(n)
    outs = {"A": {r["id"]: [r["response"]] for r in rows},
            "B": {r["id"]: [r["response"] + "x"] for r in rows}}
    gen = GenerationResult(outputs=outs, keys={})
    return EvalResult(suite=suite, models=[], generation=gen, scores={
        "A": {"exact_match": a_em, "chrf": a_chrf, "length": rng.integers(1, 30, n) * 1.0},
        "B": {"exact_match": b_em, "chrf": b_chrf, "length": rng.integers(1, 30, n) * 1.0}})


def main() -> None:
    from evals.compare import compare_results
    from evals.stats import paired_compare

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--boot", type=int, default=10_000)
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    a = (rng.random(args.n) < 0.7).astype(float)
    b = np.where(rng.random(args.n) < 0.05, 1 - a, a)
    groups = np.arange(args.n) % 50
    paired_compare(a[:50], b[:50], binary=True, n_boot=10)   # warm-up: scipy import

    t = time.perf_counter()
    res = paired_compare(a, b, binary=True, n_boot=args.boot)
    t_vec = time.perf_counter() - t
    t = time.perf_counter()
    paired_compare(a, b, groups=groups, binary=True, n_boot=args.boot)
    t_clu = time.perf_counter() - t
    ca, cb = rng.random(args.n), rng.random(args.n)
    t = time.perf_counter()
    paired_compare(ca, cb, n_boot=args.boot)
    t_cont = time.perf_counter() - t
    slice_n = max(1, args.boot // 20)
    t = time.perf_counter()
    naive_bootstrap(b - a, slice_n)
    t_naive = (time.perf_counter() - t) * args.boot / slice_n
    result = synthetic_result(args.n)
    t = time.perf_counter()
    comp = compare_results(result, "A", "B", n_boot=args.boot)
    t_full = time.perf_counter() - t

    print(f"n={args.n} examples, {args.boot} bootstrap resamples")
    print(f"paired_compare pass/fail (multinomial):     {t_vec:8.3f} s  "
          f"diff {res.diff:+.4f} CI [{res.ci_low:+.4f}, {res.ci_high:+.4f}] McNemar p={res.p_mcnemar:.3g}")
    print(f"paired_compare continuous scores:           {t_cont:8.3f} s")
    print(f"paired_compare clustered (50 groups):       {t_clu:8.3f} s")
    print(f"baseline: python-loop bootstrap (extrap.):  {t_naive:8.3f} s  "
          f"ratio vs pass/fail {t_naive / t_vec:.1f}x, vs continuous {t_naive / t_cont:.1f}x")
    print(f"compare_results (3 metrics + lists):        {t_full:8.3f} s  "
          f"({len(comp.regressions)} regressions listed, gate_failed={comp.gate_failed})")


if __name__ == "__main__":
    main()
