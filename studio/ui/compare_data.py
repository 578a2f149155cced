"""Turn evals comparisons into the tables and charts of the Compare page (pure functions)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import PurePath

import pandas as pd

from training.checkpoints import base_checkpoint_id, parse_checkpoint_id


def short(checkpoint: str, run_names: Mapping[str, str] | None = None) -> str:
    """A label that fits a chart axis: `base:/long/path/tiny` -> `base:tiny`, and
    `<run id>/step-300` -> `<run name> · step-300` when the run has a name."""
    parsed = parse_checkpoint_id(checkpoint)
    if parsed is None:
        return checkpoint
    if parsed.base_model is not None:
        return base_checkpoint_id(PurePath(parsed.base_model).name or parsed.base_model)
    name = (run_names or {}).get(parsed.run_id)
    return f"{name} · step-{parsed.step}" if name else checkpoint


Label = Callable[[str], str]


def checkpoint_metric_table(comparisons: list[dict], label: Label = short) -> pd.DataFrame:
    """Long table (checkpoint, metric, mean, low, high, n): the baseline once, then candidates."""
    rows, seen = [], set()
    for comp in comparisons:
        for m in comp["metrics"]:
            for who in ("baseline", "candidate"):
                name = comp[who]
                if (name, m["metric"]) in seen:
                    continue
                seen.add((name, m["metric"]))
                ci = m[who]
                rows.append({"checkpoint": label(name), "metric": m["metric"], "mean": ci["mean"],
                             "low": ci["low"], "high": ci["high"], "n": ci["n"]})
    return pd.DataFrame(rows, columns=["checkpoint", "metric", "mean", "low", "high", "n"])


def wide_table(long: pd.DataFrame) -> pd.DataFrame:
    """checkpoint x metric with "mean [low, high]" cells, checkpoints in comparison order."""
    if long.empty:
        return long
    cells = long.assign(cell=[f"{m:.3f} [{lo:.3f}, {hi:.3f}]"
                              for m, lo, hi in zip(long["mean"], long["low"], long["high"],
                                                   strict=True)])
    order = list(dict.fromkeys(long["checkpoint"]))
    wide = cells.pivot(index="checkpoint", columns="metric", values="cell").reindex(order)
    return wide.reset_index()


def paired_table(comparisons: list[dict], alpha: float = 0.05,
                 label: Label = short) -> pd.DataFrame:
    """One line per (candidate, metric): paired difference vs the baseline and its test."""
    rows = []
    for comp in comparisons:
        for m in comp["metrics"]:
            p = m.get("p_value")
            rows.append({"candidate": label(comp["candidate"]), "metric": m["metric"],
                         "diff": m["diff"], "ci_low": m["ci_low"], "ci_high": m["ci_high"],
                         "p_value": p, "significant": p is not None and p < alpha,
                         "test": m.get("test"), "worse": m.get("n_regressed") or 0,
                         "better": m.get("n_improved") or 0, "n": m["n"],
                         "note": m.get("warning") or ""})
    return pd.DataFrame(rows)


def warnings(comparisons: list[dict]) -> list[str]:
    """The statistics' caveats, once each (the small-n note repeats for every metric)."""
    seen: dict[str, list[str]] = {}
    for comp in comparisons:
        for w in comp.get("warnings") or []:
            metric, _, text = w.partition(": ")
            seen.setdefault(text or w, [])
            if metric not in seen[text or w]:
                seen[text or w].append(metric)
    return [f"{text} ({', '.join(metrics)})" for text, metrics in seen.items()]


def breakdown_table(comparisons: list[dict], label: Label = short) -> pd.DataFrame:
    return pd.DataFrame([{"candidate": label(c["candidate"]), **b} for c in comparisons
                         for b in c.get("breakdown") or []])
