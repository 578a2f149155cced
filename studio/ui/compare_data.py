"""Turn evals comparisons into the tables and charts of the Compare page (pure functions)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial

import pandas as pd

from evals.stats import format_p
from studio.ui.runs import checkpoint_label, run_label
from training.checkpoints import parse_checkpoint_id


def labeller(run_names: Mapping[str, str] | None = None) -> Callable[[str], str]:
    """How Compare names checkpoints everywhere (verdicts, selectors, legends, tables): the
    label Train, Evaluate and Experiments use (`studio.ui.runs.checkpoint_label`: `<run name> ·
    <short id> / step-N`, `base: <model name>`), built from the run names (id -> name)."""
    runs_by_id = {run_id: {"id": run_id, "name": name}
                  for run_id, name in (run_names or {}).items()}
    return partial(checkpoint_label, runs_by_id=runs_by_id)


def run_of(run_id: str, run_names: Mapping[str, str] | None = None) -> str:
    """A run's name as every page writes it (`studio.ui.runs.run_label`)."""
    return run_label({"id": run_id, "name": (run_names or {}).get(run_id, "")})


Label = Callable[[str], str]


def checkpoint_metric_table(comparisons: list[dict], label: Label = checkpoint_label) -> pd.DataFrame:
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


def paired_table(comparisons: list[dict], label: Label = checkpoint_label) -> pd.DataFrame:
    """One line per (candidate, metric): paired difference vs the baseline and its test, with
    p-values written as people read them and significance after the family's adjustment."""
    rows = []
    for comp in comparisons:
        for m in comp["metrics"]:
            rows.append({"candidate": label(comp["candidate"]), "metric": m["metric"],
                         "diff": m["diff"], "ci_low": m["ci_low"], "ci_high": m["ci_high"],
                         "p": format_p(m.get("p_value"), "p").removeprefix("p "),
                         "p_adjusted": (format_p(m["p_adjusted"], "p").removeprefix("p ")
                                        if m.get("p_adjusted") is not None else "—"),
                         "significant": bool(m.get("significant")),
                         "test": m.get("test"), "worse": m.get("n_regressed") or 0,
                         "better": m.get("n_improved") or 0, "n": m["n"]})
    return pd.DataFrame(rows)


def warnings(comparisons: list[dict]) -> list[str]:
    """The statistics' caveats, once each (the small-n note repeats for every metric). "n cannot
    reliably detect a difference" is about a difference that was *not* found: it is left out for
    metrics whose difference is significant, where it would contradict the verdict."""
    significant = {(c["candidate"], m["metric"]) for c in comparisons for m in c["metrics"]
                   if m.get("significant")}
    seen: dict[str, list[str]] = {}
    for comp in comparisons:
        for w in comp.get("warnings") or []:
            metric, _, text = w.partition(": ")
            if "cannot reliably detect" in text and (comp["candidate"], metric) in significant:
                continue
            text = text or w
            if "cannot reliably detect" in text:
                text = "not significant, and " + text
            seen.setdefault(text, [])
            if metric not in seen[text]:
                seen[text].append(metric)
    return [f"{text} ({', '.join(metrics)})" for text, metrics in seen.items()]


def breakdown_table(comparisons: list[dict], label: Label = checkpoint_label) -> pd.DataFrame:
    """Per category: each candidate's mean, the baseline's and the difference. The checkpoint
    goes in `checkpoint`: the breakdown's own `candidate` key is the candidate's mean."""
    cols = ["checkpoint", "category", "metric", "n", "baseline_mean", "candidate_mean", "diff"]
    return pd.DataFrame([{"checkpoint": label(c["candidate"]), "category": b["category"],
                          "metric": b["metric"], "n": b["n"], "baseline_mean": b["baseline"],
                          "candidate_mean": b["candidate"], "diff": b["diff"]}
                         for c in comparisons for b in c.get("breakdown") or []], columns=cols)


def over_checkpoints(long: pd.DataFrame, checkpoints: list[str],
                     run_names: Mapping[str, str] | None = None,
                     label: Label | None = None) -> pd.DataFrame:
    """The metric table with the run each checkpoint belongs to and its step, so a chart can
    draw a line only across the steps of one run (the base model and folders stand alone).
    `label` must be the one that labelled `long` (default: `labeller(run_names)`)."""
    label = label or labeller(run_names)
    runs, steps = {}, {}
    for c in checkpoints:
        parsed = parse_checkpoint_id(c)
        if parsed is None:
            runs[label(c)], steps[label(c)] = label(c), None
        elif parsed.base_model is not None:
            runs[label(c)], steps[label(c)] = "base model", 0
        else:
            runs[label(c)] = run_of(parsed.run_id, run_names)
            steps[label(c)] = parsed.step
    out = long.assign(run=[runs.get(c, c) for c in long["checkpoint"]],
                      step=[steps.get(c) for c in long["checkpoint"]])
    first = {r: i for i, r in reversed(list(enumerate(out["run"])))}
    order = sorted(range(len(out)), key=lambda i: (first[out["run"].iloc[i]],
                                                   out["step"].iloc[i] or 0))
    return out.iloc[order].reset_index(drop=True)


def best_checkpoint(long: pd.DataFrame, higher_is_better: bool | None) -> str | None:
    """The checkpoint label with the best mean (None for a metric without a direction)."""
    if long.empty or higher_is_better is None:
        return None
    row = long.loc[long["mean"].idxmax() if higher_is_better else long["mean"].idxmin()]
    return str(row["checkpoint"])
