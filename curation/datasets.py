"""Datasets and references: `NAME` or `NAME@VERSION` (no version = latest), rows as dicts.

This is the API the other parts use: training reads `load_rows(store, ref, "train")`, evals
read the held-out split, the UI lists datasets and versions.
"""

from __future__ import annotations

import json

from curation import versions as V
from curation.errors import NotFoundError
from curation.store import Store

ROW_COLUMNS = ("id", "messages", "instruction", "response", "system", "category", "tags", "tools")


def parse_ref(ref: str) -> tuple[str, str | None]:
    name, _, version = (ref or "").partition("@")
    if not name:
        raise NotFoundError(f"empty dataset reference {ref!r}; use NAME or NAME@VERSION")
    return name, (version or None)


def _resolve(con, ref: str) -> tuple[str, str]:
    name, version = parse_ref(ref)
    if version is None:
        row = con.execute("SELECT version FROM versions WHERE dataset = ? "
                          "ORDER BY created_at DESC, version DESC LIMIT 1", [name]).fetchall()
        if not row:
            raise NotFoundError(f"dataset {name!r} does not exist")
        return name, row[0][0]
    if not con.execute("SELECT 1 FROM versions WHERE dataset = ? AND version = ?",
                       [name, version]).fetchall():
        if not con.execute("SELECT 1 FROM datasets WHERE name = ?", [name]).fetchall():
            raise NotFoundError(f"dataset {name!r} does not exist")
        raise NotFoundError(f"dataset {name!r} has no version {version!r}")
    return name, version


def resolve_ref(store: Store, ref: str) -> tuple[str, str]:
    """(dataset, version) for `NAME` or `NAME@VERSION`; NotFoundError when either is missing."""
    with store.connect() as con:
        return _resolve(con, ref)


def load_rows(store: Store, ref: str, split: str | None = None,
              include_dups: bool = False) -> list[dict]:
    """Canonical rows of a version in import order (duplicates flagged by dedup left out)."""
    if split not in (None, "train", "heldout"):
        raise NotFoundError(f"split must be 'train' or 'heldout', not {split!r}")
    with store.connect() as con:
        dataset, version = _resolve(con, ref)
        sql = ("SELECT r.id, r.messages, r.instruction, r.response, r.system, r.category, r.tags, "
               "r.metadata ->> '$.tools' AS tools, vr.split FROM version_rows vr JOIN rows r USING (uid) "
               "WHERE vr.dataset = ? AND vr.version = ?")
        params: list = [dataset, version]
        if split:
            sql += " AND vr.split = ?"
            params.append(split)
        if not include_dups:
            sql += " AND NOT coalesce(vr.is_dup, false)"
        cur = con.execute(sql + " ORDER BY r.source_file, r.source_line, r.id", params)
        cols = [d[0] for d in cur.description]
        rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    for r in rows:
        r["messages"] = json.loads(r["messages"])
        r["tools"] = json.loads(r["tools"]) if r["tools"] else None  # tool schemas, if any
    return rows


def list_datasets(store: Store) -> list[dict]:
    return store.query("""
        SELECT d.name, d.source, d.format, d.created_at,
               count(v.version) AS n_versions,
               arg_max(v.version, v.created_at) AS latest,
               arg_max(v.n_rows, v.created_at) AS n_rows
        FROM datasets d LEFT JOIN versions v ON v.dataset = d.name
        GROUP BY ALL ORDER BY d.created_at, d.name""")


def list_versions(store: Store, name: str) -> list[dict]:
    with store.connect() as con:
        return V.list_versions(con, parse_ref(name)[0])


def show(store: Store, ref: str, n_sample: int = 3) -> dict:
    """Summary of one version: lineage entry, counts by split and dup flag, scores, a sample."""
    with store.connect() as con:
        dataset, version = _resolve(con, ref)
        info = con.execute("SELECT parent, operation, params, n_rows, created_at FROM versions "
                           "WHERE dataset = ? AND version = ?", [dataset, version]).fetchone()
        counts = con.execute(
            "SELECT count(*) FILTER (WHERE NOT is_dup AND split = 'train'), "
            "count(*) FILTER (WHERE NOT is_dup AND split = 'heldout'), count(*) FILTER (WHERE is_dup), "
            "count(DISTINCT dup_cluster) FROM version_rows WHERE dataset = ? AND version = ?",
            [dataset, version]).fetchone()
        chain = V.lineage(con, dataset, version)
        score_names = sorted(V.known_scores(con, dataset, chain))
        src = con.execute("SELECT source, format, mapping FROM datasets WHERE name = ?",
                          [dataset]).fetchone()
    from curation.browse import browse  # browse imports this module

    sample, _ = browse(store, f"{dataset}@{version}", "is_dup=false", page_size=n_sample)
    return {
        "dataset": dataset, "version": version, "parent": info[0], "operation": info[1],
        "params": json.loads(info[2]) if info[2] else {}, "n_rows": info[3],
        "created_at": info[4], "n_train": counts[0], "n_heldout": counts[1], "n_dups": counts[2],
        "n_dup_clusters": counts[3], "lineage": chain, "scores": score_names,
        "source": src[0], "format": src[1], "mapping": json.loads(src[2]) if src[2] else {},
        "sample": [{k: r[k] for k in ("id", "instruction", "response")} for r in sample],
    }


def diff(store: Store, ref_a: str, ref_b: str, sample: int = 5) -> dict:
    """What changed from version A to version B (usually a parent and its child)."""
    with store.connect() as con:
        a, b = _resolve(con, ref_a), _resolve(con, ref_b)
        return V.diff_versions(con, a, b, sample)


def parent_ref(store: Store, ref: str) -> str:
    """`NAME@PARENT` of a version (for `studio diff NAME@v2` against its parent)."""
    with store.connect() as con:
        dataset, version = _resolve(con, ref)
        row = con.execute("SELECT parent FROM versions WHERE dataset = ? AND version = ?",
                          [dataset, version]).fetchone()
    if not row or row[0] is None:
        raise NotFoundError(f"{dataset}@{version} has no parent version")
    return f"{dataset}@{row[0]}"
