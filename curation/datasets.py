"""Datasets and references: `NAME` or `NAME@VERSION` (no version = latest), rows as dicts.

This is the API the other parts use: training reads `load_rows(store, ref, "train")`, evals
read the held-out split, the UI lists datasets and versions.
"""

from __future__ import annotations

import json

import duckdb

from curation import versions as V
from kernel.errors import NotFoundError
from kernel.store import Store

ROW_COLUMNS = ("id", "messages", "instruction", "response", "system", "category", "tags", "tools")


def parse_ref(ref: str) -> tuple[str, str | None]:
    name, _, version = (ref or "").partition("@")
    if not name:
        raise NotFoundError(f"empty dataset reference {ref!r}; use NAME or NAME@VERSION")
    return name, (version or None)


def _resolve(con: duckdb.DuckDBPyConnection, ref: str) -> tuple[str, str]:
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


def resolve_ref(source: Store | duckdb.DuckDBPyConnection, ref: str) -> tuple[str, str]:
    """(dataset, version) for `NAME` or `NAME@VERSION`; NotFoundError when either is missing.

    `source` is a Store (a short connection is opened) or a connection already open inside
    the caller's `store.connect()` block, so every module resolves references the same way.
    """
    if isinstance(source, Store):
        with source.connect() as con:
            return _resolve(con, ref)
    return _resolve(source, ref)


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
    """Versions of a dataset, oldest first, with parent, operation, params and dup counts."""
    dataset = parse_ref(name)[0]
    rows = store.query(
        "SELECT v.version, v.parent, v.operation, v.params, v.n_rows, v.created_at, "
        "(SELECT count(*) FROM version_rows vr WHERE vr.dataset = v.dataset "
        " AND vr.version = v.version AND vr.is_dup) AS n_dups "
        "FROM versions v WHERE dataset = ? ORDER BY created_at, version", [dataset])
    if not rows:
        raise NotFoundError(f"dataset {dataset!r} does not exist")
    for r in rows:
        r["params"] = json.loads(r["params"]) if r["params"] else {}
    return rows


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
        sample = con.execute(
            "SELECT r.id, r.instruction, r.response FROM version_rows vr JOIN rows r "
            "ON r.rid = vr.rid WHERE vr.dataset = ? AND vr.version = ? AND NOT vr.is_dup "
            "ORDER BY vr.rowid LIMIT ?", [dataset, version, n_sample]).fetchall()
    return {
        "dataset": dataset, "version": version, "parent": info[0], "operation": info[1],
        "params": json.loads(info[2]) if info[2] else {}, "n_rows": info[3],
        "created_at": info[4], "n_train": counts[0], "n_heldout": counts[1], "n_dups": counts[2],
        "n_dup_clusters": counts[3], "lineage": chain, "scores": score_names,
        "source": src[0], "format": src[1], "mapping": json.loads(src[2]) if src[2] else {},
        "sample": [dict(zip(("id", "instruction", "response"), r, strict=True)) for r in sample],
    }


def diff(store: Store, ref_a: str, ref_b: str, sample: int = 5) -> dict:
    """What changed from version A to version B (usually a parent and its child): rows removed
    (id only in A), added (only in B), changed (same id, other content) and reflagged (same
    row, other split/dup flags), with a few example ids of each."""
    with store.connect() as con:
        a, b = _resolve(con, ref_a), _resolve(con, ref_b)
        for table, (dataset, version) in (("_da", a), ("_db", b)):
            con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT r.id, r.uid, vr.split, "
                        "vr.is_dup FROM version_rows vr JOIN rows r USING (uid) "
                        "WHERE vr.dataset = ? AND vr.version = ?", [dataset, version])
        out: dict = {"a": "@".join(a), "b": "@".join(b)}
        for key, sql in _DIFF_QUERIES.items():
            out[key] = con.execute(f"SELECT count(*) FROM ({sql})").fetchone()[0]
            out[f"{key}_ids"] = [r[0] for r in con.execute(
                f"{sql} ORDER BY 1 LIMIT ?", [int(sample)]).fetchall()]
        con.execute("DROP TABLE _da")
        con.execute("DROP TABLE _db")
    return out


_DIFF_QUERIES = {
    "removed": "SELECT id FROM _da WHERE id NOT IN (SELECT id FROM _db)",
    "added": "SELECT id FROM _db WHERE id NOT IN (SELECT id FROM _da)",
    "changed": "SELECT _db.id FROM _da JOIN _db ON _da.id = _db.id AND _da.uid <> _db.uid",
    "reflagged": "SELECT _db.id FROM _da JOIN _db ON _da.uid = _db.uid "
                 "AND (_da.split IS DISTINCT FROM _db.split OR _da.is_dup IS DISTINCT FROM _db.is_dup)",
}


def parent_ref(store: Store, ref: str) -> str:
    """`NAME@PARENT` of a version (for `studio diff NAME@v2` against its parent)."""
    with store.connect() as con:
        dataset, version = _resolve(con, ref)
        row = con.execute("SELECT parent FROM versions WHERE dataset = ? AND version = ?",
                          [dataset, version]).fetchone()
    if not row or row[0] is None:
        raise NotFoundError(f"{dataset}@{version} has no parent version")
    return f"{dataset}@{row[0]}"
