"""Compare two checkpoints on one suite: per-metric paired statistics, regressions, gate.

The gate fails when the candidate is *significantly worse by more than the margin*: the upper
end of the 95% paired-bootstrap CI of (candidate - baseline) lies below -margin, for a metric
with a direction (length is never gated). For pass/fail metrics the exact McNemar test must
agree (p < 0.05). Identical checkpoints give a CI of exactly [0, 0] and never fail.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import numpy as np

from curation.errors import StudioError
from curation.store import Store
from evals.evaluate import EvalResult, evaluate, groups_of
from evals.metrics import get_metric
from evals.stats import mean_ci, paired_compare

ALPHA = 0.05


@dataclass
class Comparison:
    suite: str
    baseline: str
    candidate: str
    n: int
    margin: float
    metrics: list[dict] = field(default_factory=list)
    regressions: list[dict] = field(default_factory=list)
    improvements: list[dict] = field(default_factory=list)
    breakdown: list[dict] = field(default_factory=list)          # by category
    breakdown_tags: list[dict] = field(default_factory=list)     # by tag (a row counts per tag)
    breakdown_groups: list[dict] = field(default_factory=list)   # by the suite's group_by value
    warnings: list[str] = field(default_factory=list)
    gate_failed: bool = False
    gate_reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


def _diff(a: str, b: str) -> str:
    return "\n".join(difflib.unified_diff(a.splitlines(), b.splitlines(), "baseline",
                                          "candidate", lineterm="", n=1))


def _metric_row(spec: str, a: np.ndarray, b: np.ndarray, groups, margin: float,
                n_boot: int, seed: int) -> tuple[dict, str | None]:
    metric = get_metric(spec)
    res = paired_compare(a, b, groups=groups, binary=metric.binary, n_boot=n_boot, seed=seed)
    sign = {True: 1.0, False: -1.0, None: 0.0}[metric.higher_is_better]
    reason = None
    if sign:
        upper = res.ci_high if sign > 0 else -res.ci_low   # best case of the signed change
        significant = res.p_mcnemar < ALPHA if res.p_mcnemar is not None else res.p_bootstrap < ALPHA
        if upper < -margin and significant:
            reason = (f"{spec}: candidate worse by {sign * res.diff:+.4f} "
                      f"(95% CI [{res.ci_low:+.4f}, {res.ci_high:+.4f}], p={res.p_value:.4g}) "
                      f"beyond margin {margin}")
    row = {"metric": spec, "binary": metric.binary, "higher_is_better": metric.higher_is_better,
           "baseline": mean_ci(a, groups, metric.binary).to_dict(),
           "candidate": mean_ci(b, groups, metric.binary).to_dict(),
           **res.to_dict(), "test": "mcnemar" if metric.binary else "paired-bootstrap",
           "regressed": reason is not None}
    return row, reason


def _examples(result: EvalResult, spec: str, base: str, cand: str,
              limit: int) -> tuple[list[dict], list[dict]]:
    a, b = result.scores[base][spec], result.scores[cand][spec]
    sign = -1.0 if get_metric(spec).higher_is_better is False else 1.0
    delta = sign * (b - a)
    worse, better = [], []
    for i in np.argsort(delta, kind="stable"):
        row = result.suite.rows[i]
        if delta[i] == 0:
            continue
        out_a = result.outputs(base, row["id"])[0]
        out_b = result.outputs(cand, row["id"])[0]
        item = {"row_id": row["id"], "metric": spec, "category": row.get("category"),
                "baseline_score": float(a[i]), "candidate_score": float(b[i]),
                "prompt": row["messages"][-2]["content"] if len(row["messages"]) > 1
                else row["messages"][0]["content"],
                "reference": row.get("response"), "baseline_output": out_a,
                "candidate_output": out_b, "diff": _diff(out_a, out_b)}
        (worse if delta[i] < 0 else better).append(item)
    better.reverse()
    return worse[:limit], better[:limit]


def _breakdown(result: EvalResult, base: str, cand: str, by: str = "category") -> list[dict]:
    """Per-value means and differences of each metric, by category, tag or group."""
    rows = result.suite.rows

    def values(r: dict) -> list[str]:
        if by == "tag":
            return list(r.get("tags") or [])
        return [r.get(by) or ""]

    keys = sorted({v for r in rows for v in values(r)})
    if len(keys) < 2:
        return []
    out = []
    for key in keys:
        idx = np.array([i for i, r in enumerate(rows) if key in values(r)])
        for spec in result.suite.metrics:
            a, b = result.scores[base][spec][idx], result.scores[cand][spec][idx]
            out.append({by: key, "metric": spec, "n": len(idx),
                        "baseline": float(a.mean()), "candidate": float(b.mean()),
                        "diff": float((b - a).mean())})
    return out


def compare_results(result: EvalResult, baseline: str, candidate: str, margin: float = 0.0,
                    metrics: list[str] | None = None, primary: str | None = None,
                    n_boot: int = 10_000, seed: int = 0, limit: int = 50) -> Comparison:
    """Statistics, example lists and gate from scores already computed (no DB, no model)."""
    suite = result.suite
    groups = groups_of(suite)
    specs = metrics or suite.metrics
    unknown = [m for m in specs if m not in suite.metrics]
    if unknown:
        raise StudioError(f"--metric {', '.join(unknown)}: not a metric of suite {suite.name} "
                          f"({', '.join(suite.metrics)})")
    comp = Comparison(suite.name, baseline, candidate, len(suite.rows), margin)
    for spec in specs:
        row, reason = _metric_row(spec, result.scores[baseline][spec],
                                  result.scores[candidate][spec], groups, margin, n_boot, seed)
        comp.metrics.append(row)
        if row["warning"]:
            comp.warnings.append(f"{spec}: {row['warning']}")
        if reason:
            comp.gate_reasons.append(reason)
    comp.gate_failed = bool(comp.gate_reasons)
    primary = primary or next((s for s in specs if get_metric(s).higher_is_better is not None),
                              specs[0])
    comp.regressions, comp.improvements = _examples(result, primary, baseline, candidate, limit)
    comp.breakdown = _breakdown(result, baseline, candidate)
    comp.breakdown_tags = _breakdown(result, baseline, candidate, by="tag")
    comp.breakdown_groups = _breakdown(result, baseline, candidate, by="group")
    return comp


def compare(store: Store, suite: str, baseline: str, candidate: str, margin: float = 0.0,
            backend: str = "hf", backend_options: dict | None = None, **kwargs) -> Comparison:
    """Evaluate both checkpoints (from the cache when possible) and compare them."""
    result = evaluate(store, suite, [baseline, candidate], backend, backend_options)
    a, b = (m.name for m in result.models)
    return compare_results(result, a, b, margin=margin, **kwargs)


def forgetting(store: Store, suite: str, checkpoint: str, base: str | None = None,
               backend: str = "hf", backend_options: dict | None = None, **kwargs) -> Comparison:
    """Drop of a checkpoint vs its base model on a general suite; flagged when significant."""
    from training.checkpoints import resolve as resolve_model

    ref = resolve_model(store, checkpoint)
    base = base or f"base:{ref.base_model}"
    return compare(store, suite, base, checkpoint, backend=backend,
                   backend_options=backend_options, **kwargs)


def across_checkpoints(store: Store, suite: str, checkpoints: list[str], metric: str | None = None,
                       backend: str = "hf", backend_options: dict | None = None) -> dict:
    """The metric at every checkpoint (mean + CI) and the best one."""
    result = evaluate(store, suite, checkpoints, backend, backend_options)
    metric = metric or result.suite.metrics[0]
    higher = get_metric(metric).higher_is_better is not False
    points = [{"checkpoint": m.name, **result.summary[m.name][metric]} for m in result.models]
    best = (max if higher else min)(points, key=lambda p: p["mean"])
    return {"suite": result.suite.name, "metric": metric, "points": points,
            "best": best["checkpoint"]}
