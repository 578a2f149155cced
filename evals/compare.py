"""Compare two checkpoints (or two seed groups) on one suite: per-metric paired statistics,
regressions, gate.

The gate fails when the candidate is *significantly worse by more than the margin*: the upper
end of the 95% paired-bootstrap CI of (candidate - baseline) lies below -margin, for a metric
with a direction (length is never gated). For pass/fail metrics the exact McNemar test must
agree (p < 0.05). Identical checkpoints give a CI of exactly [0, 0] and never fail.

Looking at several metrics (or suites, or candidates) at once makes some "significant" result
likely by chance, so the p-values of every metric with a direction are adjusted together
(Holm by default, Benjamini-Hochberg or none on request) and a claim "B differs from A on M"
survives, and the gate counts it, only when its adjusted p < 0.05. `judge_family` adjusts
several comparisons as one family.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass, field, fields

import numpy as np

from evals.backends import describe_identity
from evals.evaluate import EvalResult, evaluate, groups_of
from evals.generate import GenerationResult
from evals.metrics import get_metric
from evals.results import StoredResults, stored_results
from evals.stats import adjust_pvalues, format_p, grouped_compare, mean_ci, paired_compare
from kernel.errors import StudioError
from kernel.store import Store

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
    backend: dict | None = None     # identity of the backend whose outputs are compared
    adjust: str = "holm"                                         # multiple-comparison method
    claims: list[dict] = field(default_factory=list)             # which differences survive it
    family_size: int = 0                 # how many tests the adjustment counted (all of them)

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Comparison:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def judge_family(comparisons: list, adjust: str = "holm") -> None:
    """Adjust the p-values of every directed metric of these comparisons as one family, then
    set each metric's p_adjusted / significant / regressed, each comparison's claims and gate.
    """
    rows = [(c, r) for c in comparisons for r in c.metrics if r["higher_is_better"] is not None]
    adjusted = adjust_pvalues([r["p_value"] for _, r in rows], adjust)
    for c in comparisons:
        c.adjust, c.claims, c.gate_reasons = adjust, [], []
        for r in c.metrics:
            r["p_adjusted"], r["significant"], r["regressed"] = None, None, False
    for (c, r), p_adj in zip(rows, adjusted, strict=True):
        sign = 1.0 if r["higher_is_better"] else -1.0
        upper = r["ci_high"] if sign > 0 else -r["ci_low"]     # best case of the signed change
        r["p_adjusted"], r["significant"] = float(p_adj), bool(p_adj < ALPHA)
        r["regressed"] = r["significant"] and upper < -c.margin
        direction = "better" if sign * r["diff"] > 0 else "worse" if sign * r["diff"] < 0 else "same"
        c.claims.append({"suite": c.suite, "candidate": c.candidate, "metric": r["metric"],
                         "direction": direction, "diff": r["diff"], "p_value": r["p_value"],
                         "p_adjusted": r["p_adjusted"], "survives": r["significant"]})
        if r["regressed"]:
            c.gate_reasons.append(
                f"{r['metric']}: candidate worse by {sign * r['diff']:+.4f} (95% CI "
                f"[{r['ci_low']:+.4f}, {r['ci_high']:+.4f}], p={r['p_value']:.4g}, "
                f"{adjust}-adjusted p={r['p_adjusted']:.4g}) beyond margin {c.margin}")
    for c in comparisons:
        c.gate_failed = bool(c.gate_reasons)
        c.family_size = len(rows)


def _diff(a: str, b: str) -> str:
    return "\n".join(difflib.unified_diff(a.splitlines(), b.splitlines(), "baseline",
                                          "candidate", lineterm="", n=1))


def _metric_row(spec: str, a: np.ndarray, b: np.ndarray, groups, n_boot: int,
                seed: int) -> dict:
    metric = get_metric(spec)
    res = paired_compare(a, b, groups=groups, binary=metric.binary, n_boot=n_boot, seed=seed)
    return {"metric": spec, "binary": metric.binary, "higher_is_better": metric.higher_is_better,
            "baseline": mean_ci(a, groups, metric.binary).to_dict(),
            "candidate": mean_ci(b, groups, metric.binary).to_dict(),
            **res.to_dict(), "test": "mcnemar" if metric.binary else "paired-bootstrap"}


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
                    n_boot: int = 10_000, seed: int = 0, limit: int = 50,
                    adjust: str = "holm") -> Comparison:
    """Statistics, example lists and gate from scores already computed (no DB, no model)."""
    suite = result.suite
    groups = groups_of(suite)
    specs = metrics or suite.metrics
    unknown = [m for m in specs if m not in suite.metrics]
    if unknown:
        raise StudioError(f"--metric {', '.join(unknown)}: not a metric of suite {suite.name} "
                          f"({', '.join(suite.metrics)})")
    comp = Comparison(suite.name, baseline, candidate, len(suite.rows), margin,
                      backend=result.generation.identity)
    for spec in specs:
        row = _metric_row(spec, result.scores[baseline][spec], result.scores[candidate][spec],
                          groups, n_boot, seed)
        comp.metrics.append(row)
        if row["warning"]:
            comp.warnings.append(f"{spec}: {row['warning']}")
    judge_family([comp], adjust)
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


@dataclass
class GroupComparison:
    """Candidate group vs baseline group: seeds and examples both counted in every CI."""

    suite: str
    baseline: str
    candidate: str
    n: int
    margin: float
    baseline_runs: list[dict] = field(default_factory=list)   # run_id, name, seed, checkpoint
    candidate_runs: list[dict] = field(default_factory=list)
    metrics: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    gate_failed: bool = False
    gate_reasons: list[str] = field(default_factory=list)
    adjust: str = "holm"
    claims: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


def _group_checkpoints(store: Store, ref: str, side: str) -> list[dict]:
    from training.groups import group_runs

    runs = group_runs(store, ref)
    missing = [r for r in runs if not r["checkpoint"]]
    if missing:
        r = missing[0]
        raise StudioError(f"{side} group {ref!r}: run {r['run_id']} ({r['name']}) has no "
                          f"checkpoint yet (state {r['state']})")
    if len(runs) < 2:
        raise StudioError(f"{side} group {ref!r} has {len(runs)} run; seed variance needs at "
                          "least 2 (train with --seeds 0,1,2), or compare single checkpoints "
                          "with --baseline/--candidate")
    return runs


def compare_group_scores(scores_a: dict[str, np.ndarray],
                         scores_b: dict[str, np.ndarray], seeds_a: list | None = None,
                         seeds_b: list | None = None, n_boot: int = 4000,
                         seed: int = 0) -> list[dict]:
    """Per-metric grouped statistics from runs x examples score matrices (no DB, no model)."""
    rows = []
    for spec, a in scores_a.items():
        metric = get_metric(spec)
        res = grouped_compare(a, scores_b[spec], seeds_a, seeds_b, n_boot=n_boot, seed=seed,
                              binary=metric.binary)
        rows.append({"metric": spec, "binary": metric.binary,
                     "higher_is_better": metric.higher_is_better,
                     "baseline": float(np.mean(a)), "candidate": float(np.mean(scores_b[spec])),
                     **res.to_dict(), "test": "two-level-bootstrap"})
    return rows


def compare_groups(store: Store, suite: str, baseline: str, candidate: str, margin: float = 0.0,
                   backend: str = "hf", backend_options: dict | None = None,
                   metrics: list[str] | None = None, n_boot: int = 4000,
                   seed: int = 0, adjust: str = "holm") -> GroupComparison:
    """Evaluate the last checkpoint of every run of both groups (cached) and compare the groups.

    A group is a run group id or name (`studio train --seeds`) or a glob over run names/ids.
    """
    runs_a = _group_checkpoints(store, baseline, "baseline")
    runs_b = _group_checkpoints(store, candidate, "candidate")
    shared = {r["run_id"] for r in runs_a} & {r["run_id"] for r in runs_b}
    if shared:
        raise StudioError(f"groups {baseline!r} and {candidate!r} share run {sorted(shared)[0]}")
    ckpts = [r["checkpoint"] for r in runs_a + runs_b]
    result = evaluate(store, suite, ckpts, backend, backend_options)
    names = [m.name for m in result.models]
    names_a, names_b = names[:len(runs_a)], names[len(runs_a):]
    specs = metrics or result.suite.metrics
    unknown = [m for m in specs if m not in result.suite.metrics]
    if unknown:
        raise StudioError(f"--metric {', '.join(unknown)}: not a metric of suite "
                          f"{result.suite.name} ({', '.join(result.suite.metrics)})")
    comp = GroupComparison(result.suite.name, baseline, candidate, len(result.suite.rows), margin,
                           baseline_runs=runs_a, candidate_runs=runs_b)
    stack = {side: {s: np.vstack([result.scores[name][s] for name in group]) for s in specs}
             for side, group in (("a", names_a), ("b", names_b))}
    comp.metrics = compare_group_scores(stack["a"], stack["b"],
                                        [r["seed"] for r in runs_a], [r["seed"] for r in runs_b],
                                        n_boot, seed)
    comp.warnings = [f"{r['metric']}: {r['warning']}" for r in comp.metrics if r["warning"]]
    judge_family([comp], adjust)
    return comp


# --- from stored results, with the statistics computed once ---------------------------------

# Bump when the statistics or the comparison's fields change: cache keys use it.
# 2: a mean's CI is a percentile bootstrap (inside the metric's range).
STATS_VERSION = 2


def result_from_stored(stored: StoredResults) -> EvalResult:
    """An EvalResult over stored scores and outputs, for `compare_results` (no model, no DB)."""
    ckpts = list(stored.scores)
    identity = next((b for b in stored.backends.values() if b), None)
    gen = GenerationResult(outputs=stored.outputs, keys={}, identity=identity)
    return EvalResult(stored.suite, [], gen, scores=stored.scores,
                      summary={c: {} for c in ckpts})


def _cache_key(stored: StoredResults, baseline: str, candidate: str, settings: dict) -> str:
    blob = json.dumps({"v": STATS_VERSION, "suite": stored.suite.name, "baseline": baseline,
                       "candidate": candidate, "a": stored.fingerprints[baseline],
                       "b": stored.fingerprints[candidate], **settings}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _backend_note(stored: StoredResults, baseline: str, candidate: str) -> str | None:
    a, b = stored.backends.get(baseline), stored.backends.get(candidate)
    if a == b:
        return None
    return (f"outputs come from different backends: baseline {describe_identity(a)}, candidate "
            f"{describe_identity(b)}; the difference includes the backends'")


def compare_stored(store: Store, suite: str, baseline: str, candidates: list[str],
                   adjust: str = "holm", n_boot: int = 10_000, seed: int = 0,
                   limit: int = 50, stored: StoredResults | None = None) -> list[Comparison]:
    """Baseline vs each candidate from stored per-example results, as the Compare page needs.

    The results are read with one query (`evals.results.stored_results`); each pair's
    statistics are computed once per content fingerprint of both checkpoints' results and kept
    in `comparison_cache`, so a page view is a read. The p-values of every candidate and
    directed metric are then adjusted as one family (`judge_family`): the page claims all of
    them at once. Nothing is generated: a checkpoint without stored results is an error.
    `stored`: results already read (covering baseline and candidates), e.g. kept by the page
    across baseline changes; read here when None.
    """
    if (stored is None or stored.suite.name != suite
            or not {baseline, *candidates} <= set(stored.scores)):
        stored = stored_results(store, suite, [baseline, *candidates])
    settings = {"n_boot": n_boot, "seed": seed, "limit": limit}
    keys = {c: _cache_key(stored, baseline, c, settings) for c in candidates}
    with store.read() as con:
        found = dict(con.execute("SELECT key, comparison FROM comparison_cache "
                                 "WHERE key IN (SELECT unnest(?))",
                                 [list(keys.values())]).fetchall())
    comps, fresh = [], []
    for c in candidates:
        if keys[c] in found:
            comps.append(Comparison.from_dict(json.loads(found[keys[c]])))
            continue
        comp = compare_results(result_from_stored(stored), baseline, c, n_boot=n_boot,
                               seed=seed, limit=limit)
        comp.backend = stored.backends.get(baseline)
        note = _backend_note(stored, baseline, c)
        if note:
            comp.warnings.append(note)
        comps.append(comp)
        fresh.append((keys[c], comp))
    if fresh:
        with store.transaction() as con:
            # one entry per pair: results that changed leave their old statistics behind
            con.executemany("DELETE FROM comparison_cache WHERE suite = ? AND baseline = ? "
                            "AND candidate = ? AND key <> ?",
                            [[c.suite, c.baseline, c.candidate, k] for k, c in fresh])
            con.executemany("INSERT INTO comparison_cache (key, suite, baseline, candidate, "
                            "comparison) VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
                            [[k, c.suite, c.baseline, c.candidate, json.dumps(c.to_dict())]
                             for k, c in fresh])
    judge_family(comps, adjust)
    return comps


ADJUST_NAMES = {"holm": "Holm", "bh": "Benjamini-Hochberg", "none": "no"}


def verdict(comp: Comparison | dict, metric: str | None = None, label=str) -> str:
    """One line that answers "did the candidate win": direction, difference with its 95% CI
    and whether it survives the multiple-comparison adjustment, e.g. "curated beats raw on
    exact_match by +0.330 [+0.280, +0.380], significant after Holm adjustment (p < 0.001)"."""
    c = comp.to_dict() if isinstance(comp, Comparison) else comp
    rows = [m for m in c["metrics"] if m["higher_is_better"] is not None] or c["metrics"]
    m = next((r for r in rows if r["metric"] == metric), rows[0])
    a, b = label(c["baseline"]), label(c["candidate"])
    sign = -1.0 if m["higher_is_better"] is False else 1.0
    change = f"by {m['diff']:+.3f} [{m['ci_low']:+.3f}, {m['ci_high']:+.3f}]"
    how = ADJUST_NAMES.get(c.get("adjust"), c.get("adjust"))
    p = m.get("p_adjusted")
    if m.get("significant"):
        word = "beats" if sign * m["diff"] > 0 else "is worse than"
        after = "" if c.get("adjust") == "none" else f" after {how} adjustment"
        return (f"{b} {word} {a} on {m['metric']} {change}, significant{after} "
                f"(adjusted {format_p(p)})")
    if m["diff"] == 0 and m["ci_low"] == m["ci_high"]:
        return f"{b} and {a} score the same on {m['metric']} (identical per-example scores)"
    tail = f"{format_p(p)} after {how} adjustment" if p is not None else \
        format_p(m.get("p_value"))
    return (f"no significant difference between {b} and {a} on {m['metric']}: {change}, "
            f"{tail}")
