"""The experiments table: every train run with its group, exact data version, key config,
state and held-out metrics, plus what comparing two runs needs (config diff, loss curves) and
cancelling the rest of a group.

Why here: the UI and `studio experiments` show the same rows, and the front ends run no SQL.
A run's group is a seed group or sweep (`run_groups`, training.groups) or an ablation
(`ablation_runs`, evals.ablation); its dataset version comes from its provenance (the version
pinned at launch), its metrics from the latest stored eval of its last evaluated checkpoint.
"""

from __future__ import annotations

import json

from kernel import jobs
from kernel.errors import NotFoundError, StudioError
from kernel.status import ACTIVE, read_metrics
from training import provenance

# Config fields shown as columns (the rest is in the config diff).
KEY_CONFIG = ("base_model", "learning_rate", "lora_r", "num_epochs", "max_steps", "seed")
ACTIVE_STATES = ACTIVE  # the job states a run group can still cancel (kernel.status)


def _config(value) -> dict:
    if isinstance(value, str):
        try:
            return json.loads(value) or {}
        except ValueError:
            return {}
    return dict(value or {})


def _groups(store) -> dict[str, dict]:
    """run_id -> {group_id, group, group_kind}: its latest group (a seed group, a sweep or an
    ablation: `training.groups` records all three)."""
    from training.groups import run_groups_by_run

    return {run_id: {"group_id": g[-1]["group_id"], "group": g[-1]["group"],
                     "group_kind": g[-1]["kind"] or "seeds"}
            for run_id, g in run_groups_by_run(store).items()}


def _metrics(store, run_ids: list[str]) -> dict[str, dict]:
    """run_id -> {checkpoint, metrics: {'suite/metric': mean}} from the run's last checkpoint
    that has a stored eval (the latest eval per suite)."""
    if not run_ids:
        return {}
    marks = ", ".join("?" for _ in run_ids)
    rows = store.query(f"""
        SELECT c.run_id, c.step, e.checkpoint, e.suite, arg_max(e.summary, e.created_at) AS summary
        FROM eval_runs e JOIN checkpoints c ON c.id = e.checkpoint
        WHERE c.run_id IN ({marks}) GROUP BY ALL ORDER BY c.step, e.suite""", run_ids)
    out: dict[str, dict] = {}
    for r in rows:  # ascending step: the last evaluated checkpoint wins
        seen = out.get(r["run_id"])
        if seen is None or seen["checkpoint"] != r["checkpoint"]:
            seen = out[r["run_id"]] = {"checkpoint": r["checkpoint"], "metrics": {}}
        summary = json.loads(r["summary"]) if r["summary"] else {}
        for metric, value in summary.items():
            if isinstance(value, dict):
                value = value.get("mean")
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                seen["metrics"][f"{r['suite']}/{metric}"] = float(value)
    return out


def experiments(store) -> list[dict]:
    """Every train run, newest first: run_id, name, group, group_id, group_kind, dataset (the
    exact NAME@VERSION, or the data file), the KEY_CONFIG fields, state, step, last checkpoint,
    evaluated checkpoint, metrics {'suite/metric': mean}, config (the full TrainConfig), and
    halving_note (why a run of a halving sweep stopped itself early, else None: it ends
    `completed` with a usable checkpoint, but must not read as a run that trained to the end)."""
    from training.halving import stopped

    runs = jobs.list_runs(store, kind="train")
    provenance.sync(store)
    prov = {r["run_id"]: r for r in store.query(
        "SELECT run_id, dataset_ref, data_file FROM run_provenance")}
    configs = {r["id"]: _config(r["config"]) for r in store.query(
        "SELECT id, config FROM runs WHERE kind = 'train'")}
    last_ckpt = {}
    for c in store.query("SELECT id, run_id FROM checkpoints WHERE run_id IS NOT NULL "
                         "ORDER BY step"):
        last_ckpt[c["run_id"]] = c["id"]
    groups = _groups(store)
    metrics = _metrics(store, [r["id"] for r in runs])
    out = []
    for run in runs:
        cfg = configs.get(run["id"], {})
        p = prov.get(run["id"], {})
        group = groups.get(run["id"], {"group_id": None, "group": None, "group_kind": None})
        evaluated = metrics.get(run["id"], {"checkpoint": None, "metrics": {}})
        out.append({
            "run_id": run["id"], "name": run["name"], **group,
            "dataset": p.get("dataset_ref") or cfg.get("dataset") or p.get("data_file")
            or cfg.get("data_file") or None,
            **{k: cfg.get(k) for k in KEY_CONFIG},
            "state": run["state"], "step": run["step"], "created_at": run["created_at"],
            "halving_note": (stopped(run["run_dir"]) or {}).get("note"),
            "checkpoint": last_ckpt.get(run["id"]),
            "evaluated_checkpoint": evaluated["checkpoint"], "metrics": evaluated["metrics"],
            "config": cfg,
        })
    return out


def metric_names(rows: list[dict]) -> list[str]:
    """Every 'suite/metric' seen in the rows, sorted (the sortable metric columns)."""
    return sorted({m for r in rows for m in r["metrics"]})


def table(rows: list[dict]) -> list[dict]:
    """Flat rows for a table: who and on what data, one column per 'suite/metric' (None if
    absent), then state ('stopped by halving' for a run that halved itself) and the key config."""
    names = metric_names(rows)
    head = ("run_id", "name", "group", "dataset")
    tail = ("state", "step", *KEY_CONFIG, "evaluated_checkpoint")
    return [{**{k: r[k] for k in head}, **{m: r["metrics"].get(m) for m in names},
             **{k: r[k] for k in tail},
             **({"state": "stopped by halving"} if r.get("halving_note") else {})} for r in rows]


def sort_by_metric(rows: list[dict], metric: str, descending: bool = True) -> list[dict]:
    """Rows ordered by one 'suite/metric'; runs without it go last."""
    have = [r for r in rows if r["metrics"].get(metric) is not None]
    missing = [r for r in rows if r["metrics"].get(metric) is None]
    return sorted(have, key=lambda r: r["metrics"][metric], reverse=descending) + missing


def _flatten(config: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def config_diff(a: dict, b: dict) -> list[dict]:
    """The config fields that differ between two runs: [{field, a, b}], sorted by field.
    Takes two configs or two experiment rows (their `config` is used); a field only one
    side has shows None on the other."""
    fa, fb = (_flatten(x["config"] if "config" in x and isinstance(x["config"], dict) else x)
              for x in (a, b))
    return [{"field": k, "a": fa.get(k), "b": fb.get(k)} for k in sorted(set(fa) | set(fb))
            if fa.get(k) != fb.get(k)]


def loss_curves(store, run_ids: list[str]) -> list[dict]:
    """Long-form points for overlaid curves: [{run_id, step, series, value}] where series is
    'loss' (training) or 'eval_loss', read from each run's metrics.jsonl."""
    if not run_ids:
        return []
    marks = ", ".join("?" for _ in run_ids)
    found = {r["id"]: r["run_dir"] for r in store.query(
        f"SELECT id, run_dir FROM runs WHERE id IN ({marks})", list(run_ids))}
    missing = [r for r in run_ids if r not in found]
    if missing:
        raise NotFoundError(f"run {missing[0]!r} not found")
    points = []
    for run_id in run_ids:
        for record in read_metrics(found[run_id]):
            for series in ("loss", "eval_loss"):
                value = record.get(series)
                if isinstance(value, (int, float)) and "step" in record:
                    points.append({"run_id": run_id, "step": record["step"], "series": series,
                                   "value": float(value)})
    return points


def group_members(store, group_id: str) -> list[dict]:
    """The runs of a group (seed group, sweep or ablation) with their states."""
    rows = [r for r in experiments(store) if r["group_id"] == group_id]
    if not rows:
        raise NotFoundError(f"group {group_id!r} has no runs (see the experiments table)")
    return rows


def cancel_rest(store, group_id: str) -> list[str]:
    """Cancel every queued or running run of a group (the rest of a sweep or seed group);
    finished runs stay. Returns the cancelled run ids; StudioError when none was left."""
    from training.groups import cancel_group

    cancelled = [c["run_id"] for c in cancel_group(store, group_id)]
    if not cancelled:
        raise StudioError(f"group {group_id!r}: no queued or running run left to cancel")
    return cancelled
