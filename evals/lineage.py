"""Which curation steps shaped a model, and what each version's runs scored.

`lineage(store, "support@v7")` walks from the import to v7: each step's operation, params and
the rows it removed, with the runs trained on that exact version (from `run_provenance`) and
the held-out metrics of their checkpoints (latest stored eval per suite). `dataset_tree` gives
every version of a dataset the same way (branches included); `checkpoint_lineage` starts from
a checkpoint and goes back to every curation step behind its training data. Read only: it
never starts or ingests jobs (only provenance rows missing from the store are filled in).
"""

from __future__ import annotations

import json

from curation import versions as V
from curation.datasets import parse_ref, resolve_ref
from kernel.errors import NotFoundError
from training import provenance


def _version_rows(store, dataset: str) -> dict[str, dict]:
    """version -> its record with counts of usable rows (duplicates flagged by dedup are out)."""
    rows = store.query("""
        SELECT v.version, v.parent, v.operation, v.params, v.created_at,
               count(vr.uid) FILTER (WHERE NOT coalesce(vr.is_dup, false)) AS n_rows,
               count(vr.uid) FILTER (WHERE NOT coalesce(vr.is_dup, false)
                                       AND vr.split = 'train') AS n_train
        FROM versions v LEFT JOIN version_rows vr
          ON vr.dataset = v.dataset AND vr.version = v.version
        WHERE v.dataset = ? GROUP BY ALL ORDER BY v.created_at, v.version""", [dataset])
    if not rows:
        raise NotFoundError(f"dataset {dataset!r} does not exist")
    out = {r["version"]: {**r, "params": json.loads(r["params"]) if r["params"] else {}}
           for r in rows}
    for r in out.values():
        parent = out.get(r["parent"])
        r["rows_removed"] = parent["n_rows"] - r["n_rows"] if parent else None
        r["train_rows_removed"] = parent["n_train"] - r["n_train"] if parent else None
    return out


def _latest_evals(store, checkpoint_ids: list[str]) -> dict[str, list[dict]]:
    """checkpoint -> [{suite, role, metrics: {metric: mean}}], the latest result per suite."""
    if not checkpoint_ids:
        return {}
    marks = ", ".join("?" for _ in checkpoint_ids)
    rows = store.query(f"""
        SELECT e.checkpoint, e.suite, s.role, arg_max(e.summary, e.created_at) AS summary
        FROM eval_runs e LEFT JOIN eval_suites s ON s.name = e.suite
        WHERE e.checkpoint IN ({marks}) GROUP BY ALL ORDER BY e.suite""", checkpoint_ids)
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["checkpoint"], []).append(
            {"suite": r["suite"], "role": r["role"],
             "metrics": json.loads(r["summary"]) if r["summary"] else {}})
    return out


def _runs_by_version(store, dataset: str) -> dict[str, list[dict]]:
    """version -> train runs on it, each with its checkpoints and their stored eval results."""
    provenance.sync(store)
    runs = store.query("""
        SELECT p.version, r.id AS run_id, r.name, r.state, r.created_at
        FROM run_provenance p JOIN runs r ON r.id = p.run_id
        WHERE p.dataset = ? ORDER BY r.created_at, r.id""", [dataset])
    if not runs:
        return {}
    marks = ", ".join("?" for _ in runs)
    ckpts = store.query(f"SELECT id, run_id, step FROM checkpoints WHERE run_id IN ({marks}) "
                        "ORDER BY step", [r["run_id"] for r in runs])
    evals = _latest_evals(store, [c["id"] for c in ckpts])
    out: dict[str, list[dict]] = {}
    for run in runs:
        run["checkpoints"] = [{"id": c["id"], "step": c["step"], "evals": evals.get(c["id"], [])}
                              for c in ckpts if c["run_id"] == run["run_id"]]
        out.setdefault(run.pop("version"), []).append(run)
    return out


def _step(dataset: str, record: dict, runs: list[dict], depth: int) -> dict:
    return {"ref": f"{dataset}@{record['version']}", "version": record["version"],
            "parent": record["parent"], "operation": record["operation"],
            "params": record["params"], "n_rows": record["n_rows"], "n_train": record["n_train"],
            "rows_removed": record["rows_removed"],
            "train_rows_removed": record["train_rows_removed"],
            "created_at": record["created_at"], "depth": depth, "runs": runs}


def lineage(store, ref: str) -> dict:
    """The chain import -> ... -> VERSION of `ref`, oldest first, with runs and metrics."""
    dataset, version = resolve_ref(store, ref)
    records = _version_rows(store, dataset)
    with store.connect() as con:
        chain = list(reversed(V.lineage(con, dataset, version)))
    runs = _runs_by_version(store, dataset)
    steps = [_step(dataset, records[v], runs.get(v, []), i) for i, v in enumerate(chain)]
    return {"dataset": dataset, "version": version, "ref": f"{dataset}@{version}", "steps": steps}


def dataset_tree(store, name: str) -> dict:
    """Every version of a dataset in tree order (a child right under its parent, `depth`
    = distance from the import), each with its runs and their metrics."""
    dataset = parse_ref(name)[0]
    records = _version_rows(store, dataset)
    runs = _runs_by_version(store, dataset)
    children: dict[str | None, list[str]] = {}
    for v, r in records.items():
        parent = r["parent"] if r["parent"] in records else None
        children.setdefault(parent, []).append(v)
    steps: list[dict] = []

    def visit(version: str, depth: int) -> None:
        steps.append(_step(dataset, records[version], runs.get(version, []), depth))
        for child in children.get(version, []):
            visit(child, depth + 1)

    for root in children.get(None, []):
        visit(root, 0)
    return {"dataset": dataset, "steps": steps}


def checkpoint_lineage(store, checkpoint_id: str) -> dict:
    """From a checkpoint back to its run's provenance and every curation step of its data."""
    rows = store.query("SELECT id, run_id, step FROM checkpoints WHERE id = ?", [checkpoint_id])
    if not rows or not rows[0]["run_id"]:
        raise NotFoundError(f"checkpoint {checkpoint_id!r} not found (ids look like "
                            "'<run_id>/step-<N>'; base models have no training data)")
    run_id = rows[0]["run_id"]
    prov = provenance.get(store, run_id)
    if not prov:
        raise NotFoundError(f"run {run_id} has no provenance (started before it was recorded)")
    data = lineage(store, prov["dataset_ref"]) if prov.get("dataset_ref") else None
    return {"checkpoint": checkpoint_id, "run_id": run_id, "step": rows[0]["step"],
            "provenance": prov, "evals": _latest_evals(store, [checkpoint_id]).get(checkpoint_id, []),
            "data_file": prov.get("data_file"),
            "steps": data["steps"] if data else []}


def _params_text(params: dict, limit: int = 60) -> str:
    text = ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in params.items()
                     if v not in (None, [], {}))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _metrics_text(run: dict) -> str:
    """The held-out metrics of a run's last evaluated checkpoint, e.g. 'held: exact_match 0.67'."""
    for ckpt in reversed(run["checkpoints"]):
        if ckpt["evals"]:
            parts = [f"{e['suite']}: " + ", ".join(f"{m} {v:.3f}" for m, v in e["metrics"].items()
                                                   if isinstance(v, (int, float)))
                     for e in ckpt["evals"]]
            return f"{ckpt['id']} " + "; ".join(parts)
    return "no eval yet"


def lineage_table(steps: list[dict]) -> list[dict]:
    """Flat rows for a table (the UI and the CLI): one per version, then one per run under it."""
    out = []
    for s in steps:
        removed = "" if s["rows_removed"] is None else f"-{s['rows_removed']}" if s["rows_removed"] else "0"
        out.append({"version": "  " * s["depth"] + s["ref"], "step": s["operation"],
                    "params": _params_text(s["params"]), "rows": s["n_rows"],
                    "train": s["n_train"], "removed": removed, "run": "", "metrics": ""})
        for run in s["runs"]:
            out.append({"version": "  " * s["depth"] + "  └ run", "step": run["state"],
                        "params": run["name"] or "", "rows": None, "train": None, "removed": "",
                        "run": run["run_id"], "metrics": _metrics_text(run)})
    return out


def lineage_view(store, ref: str) -> list[dict]:
    """What a UI page shows for `ref`: `NAME@VERSION` = its chain, `NAME` = the whole tree."""
    _, version = parse_ref(ref)
    data = lineage(store, ref) if version else dataset_tree(store, ref)
    return lineage_table(data["steps"])
