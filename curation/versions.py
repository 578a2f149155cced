"""Immutable versions: create one from a SELECT over its parent, list lineage, diff two.

A version is a list of row uids with per-version flags (split, dup cluster, is_dup); rows
themselves never change. Every operation (import, filter, dedup, score, split, edit, exclude)
records its parent, its name and its parameters, so lineage can be replayed and explained.
"""

from __future__ import annotations

import json

import duckdb

from kernel.errors import StudioError
from kernel.version_names import VERSION_NAME, check_name, next_version_name, taken_versions  # noqa: F401


def lineage(con: duckdb.DuckDBPyConnection, dataset: str, version: str) -> list[str]:
    """[version, parent, grandparent, ...] — used to find scores computed on ancestors."""
    parents = dict(con.execute("SELECT version, parent FROM versions WHERE dataset = ?",
                               [dataset]).fetchall())
    chain, cur = [], version
    while cur is not None and cur not in chain:
        chain.append(cur)
        cur = parents.get(cur)
    return chain


def known_scores(con: duckdb.DuckDBPyConnection, dataset: str, chain: list[str]) -> dict[str, str]:
    """score name -> the nearest version in `chain` that computed it (its values apply)."""
    got = con.execute("SELECT version, params FROM versions WHERE dataset = ? AND "
                      "operation = 'score' AND list_contains(?, version)", [dataset, chain]
                      ).fetchall()
    out: dict[str, str] = {}
    for version, params in sorted(got, key=lambda g: chain.index(g[0])):
        names = (json.loads(params) if params else {}).get("scores")
        if names is None:  # written before score versions listed their names
            names = [r[0] for r in con.execute(
                "SELECT DISTINCT name FROM scores WHERE dataset = ? AND version = ?",
                [dataset, version]).fetchall()]
        for name in names:
            out.setdefault(name, version)
    return out


def create_version(con: duckdb.DuckDBPyConnection, dataset: str, parent: str | None,
                   operation: str, params: dict, select_sql: str, select_params: list,
                   name: str | None = None) -> str:
    """Insert a version whose rows are `select_sql` -> (uid, split, dup_cluster, is_dup).

    Runs inside the caller's transaction; returns the version name.
    """
    name = check_name(name) if name else next_version_name(con, dataset)
    if con.execute("SELECT 1 FROM versions WHERE dataset = ? AND version = ?",
                   [dataset, name]).fetchone():
        raise StudioError(f"version {dataset}@{name} already exists; pick another --out name")
    # stored in source order, so browsing in that order needs no join (ORDER BY vr.rowid)
    con.execute("INSERT INTO version_rows (dataset, version, uid, split, dup_cluster, is_dup, "
                f"rid) SELECT ?, ?, s.uid, s.split, s.dup_cluster, s.is_dup, r.rid FROM "
                f"({select_sql}) s "
                "JOIN rows r ON r.uid = s.uid ORDER BY r.source_file, r.source_line, r.uid",
                [dataset, name, *select_params])
    n = con.execute("SELECT count(*) FROM version_rows WHERE dataset = ? AND version = ?",
                    [dataset, name]).fetchone()[0]
    con.execute("INSERT INTO versions (dataset, version, parent, operation, params, n_rows, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, now())",
                [dataset, name, parent, operation, json.dumps(params, default=str), n])
    return name


def parent_rows_sql() -> str:
    """SELECT of a version's rows with their flags: params (dataset, version)."""
    return ("SELECT uid, split, dup_cluster, is_dup FROM version_rows "
            "WHERE dataset = ? AND version = ?")
