"""Browse and filter a version: one page of rows + the total, and filter-to-new-version.

Both build the same parameterized query: version_rows joined to rows (and to any score a
condition names), filtered by compiled conditions. On 1M rows DuckDB answers a page in a
fraction of a second, so the UI can page through big datasets.
"""

from __future__ import annotations

import json
import re

import duckdb

from curation import search
from curation import versions as V
from curation.datasets import resolve_ref as _resolve
from curation.filters import FIELDS, VERSION_FIELDS, Condition, compile_conditions, parse_where
from kernel.errors import StudioError
from kernel.store import Store

PAGE_COLUMNS = ("r.uid, r.id, r.instruction, r.response, r.system, r.messages, r.category, "
                "r.tags, r.n_turns, r.source_file, r.source_line, vr.split, vr.dup_cluster, "
                "vr.is_dup, r.inst_chars, r.resp_chars, r.rid")


def _as_conditions(conditions: list[Condition] | str | None) -> list[Condition]:
    return parse_where(conditions) if isinstance(conditions, str) or conditions is None \
        else list(conditions)


def _covers_dataset(con: duckdb.DuckDBPyConnection, dataset: str, version: str) -> bool:
    """True when the version holds every row of its dataset (e.g. the import): row filters
    then need no join with version_rows, the costly part on big datasets."""
    n_version = con.execute("SELECT n_rows FROM versions WHERE dataset = ? AND version = ?",
                            [dataset, version]).fetchall()[0][0]
    n_rows = con.execute("SELECT count(*) FROM rows WHERE dataset = ?", [dataset]).fetchall()[0][0]
    return n_version == n_rows


def filtered_sql(con: duckdb.DuckDBPyConnection, dataset: str, version: str,
                 conditions: list[Condition], select: str, extra_scores: tuple[str, ...] = (),
                 order: str = "", covering: bool | None = None) -> tuple[str, list, list[str]]:
    """SELECT `select` FROM the version's rows WHERE conditions; returns (sql, params, aliases).

    `select`/`order` may use `r.` (rows) and `vr.` (version_rows) columns; `covering` (None =
    check) says the version holds every row of the dataset, so no version_rows join is needed
    unless a `vr.` column is used."""
    chain = V.lineage(con, dataset, version)
    comp = compile_conditions(conditions, dataset, V.known_scores(con, dataset, chain),
                              extra_scores)
    uses_vr = any(re.search(r"\bvr\.", part) for part in (comp.where, select, order))
    if covering is None:
        covering = not uses_vr and _covers_dataset(con, dataset, version)
    if covering and not uses_vr:
        joins = comp.joins.replace("= vr.rid", "= r.rid")
        sql = f"SELECT {select} FROM rows r{joins} WHERE r.dataset = ? AND {comp.where}"
        return sql, [*comp.join_params, dataset, *comp.where_params], comp.score_fields
    needs_rows = any(re.search(r"\br\.", part) for part in (comp.where, select, order))
    rows_join = " JOIN rows r ON r.rid = vr.rid" if needs_rows else ""
    sql = (f"SELECT {select} FROM version_rows vr{rows_join}{comp.joins} "
           f"WHERE vr.dataset = ? AND vr.version = ? AND {comp.where}")
    return sql, [*comp.join_params, dataset, version, *comp.where_params], comp.score_fields


def browse(store: Store, ref: str, conditions: list[Condition] | str | None = None,
           sort: str | None = None, page: int = 1, page_size: int = 50) -> tuple[list[dict], int]:
    """One page of rows matching `conditions`, sorted by `sort` ("field" or "-field" for
    descending; a row field or a score name), and the total number of matches."""
    if page < 1 or not 1 <= page_size <= 10_000:
        raise StudioError("browse: page must be >= 1 and page_size between 1 and 10000")
    conds = _as_conditions(conditions)
    desc = bool(sort) and sort.startswith("-")
    key = (sort or "").lstrip("-+") or None
    with store.connect() as con:
        dataset, version = _resolve(con, ref)
        extra = (key,) if key and key not in FIELDS else ()
        order = FIELDS[key][0] if key in FIELDS else "s0.value"  # a sort score is joined first
        covering = not any(c.field in VERSION_FIELDS for c in conds) \
            and _covers_dataset(con, dataset, version)
        if not key:  # source order: rids follow it within an import, versions are stored in it
            order = "r.rid" if covering else "vr.rowid"
        # narrow pass: only the integer keys of the page; the total and wide columns after
        key_col = "r.rid" if covering else "vr.rid"
        direction = "DESC" if desc else "ASC"
        if any(c.op in ("~", "!~") and c.field not in ("tags",) for c in conds):
            # text search is the costly scan: run it once, then count and page the matches
            rest, rids = search.narrow(con, dataset, conds)  # the word index, if it helps
            sql, params, _ = filtered_sql(con, dataset, version, rest if rids is not None
                                          else conds, f"{key_col} AS k, {order} AS o",
                                          extra, order, covering)
            if rids is not None:  # only the rows whose text matched
                sql += f" AND {key_col} BETWEEN ? AND ? AND list_contains(?, {key_col})"
                params = [*params, rids[0] if rids else 0, rids[-1] if rids else -1, rids]
            con.execute(f"CREATE TEMP TABLE _matches AS {sql}", params)
            total = con.execute("SELECT count(*) FROM _matches").fetchall()[0][0]
            rids = [k for (k,) in con.execute(
                f"SELECT k FROM _matches ORDER BY o {direction} NULLS LAST, k LIMIT ? OFFSET ?",
                [page_size, (page - 1) * page_size]).fetchall()]
        else:
            sql, params, _ = filtered_sql(con, dataset, version, conds, key_col, extra, order,
                                          covering)
            sql += f" ORDER BY {order} {direction} NULLS LAST, {key_col} LIMIT ? OFFSET ?"
            rids = [k for (k,) in con.execute(sql, [*params, page_size, (page - 1) * page_size]
                                              ).fetchall()]
            total = _count(con, dataset, version, conds, covering)
        rows = []
        if rids:  # min/max bounds let DuckDB skip row groups by their zone maps
            lo, hi = min(rids), max(rids)
            cur = con.execute(
                f"SELECT {PAGE_COLUMNS} FROM rows r JOIN version_rows vr ON vr.rid = r.rid "
                "AND vr.dataset = ? AND vr.version = ? WHERE r.rid BETWEEN ? AND ? "
                "AND list_contains(?, r.rid) AND vr.rid BETWEEN ? AND ? AND list_contains(?, vr.rid)",
                [dataset, version, lo, hi, rids, lo, hi, rids])
            cols = [d[0] for d in cur.description]
            by_rid = {r[-1]: dict(zip(cols, r, strict=True)) for r in cur.fetchall()}
            rows = [by_rid[k] for k in rids]
        _attach_scores(con, dataset, version, rows)
    for r in rows:
        r["messages"] = json.loads(r["messages"])
    return rows, total


def _count(con, dataset: str, version: str, conds: list[Condition],
           covering: bool | None = None) -> int:
    sql, params, _ = filtered_sql(con, dataset, version, conds, "count(*)", covering=covering)
    return con.execute(sql, params).fetchone()[0]


def _attach_scores(con, dataset: str, version: str, rows: list[dict]) -> None:
    """Each row gets `scores` {name: value or label} from the nearest version that has them."""
    if not rows:
        return
    chain = V.lineage(con, dataset, version)
    known = V.known_scores(con, dataset, chain)
    by_rid: dict[int, dict] = {r["rid"]: {} for r in rows}
    rids = list(by_rid)
    if known:  # scores are stored sorted by (name, rid): the rid bounds prune row groups
        got = con.execute(
            "SELECT rid, name, version, value, label FROM scores WHERE dataset = ? "
            "AND list_contains(?, version) AND list_contains(?, name) AND rid BETWEEN ? AND ? "
            "AND list_contains(?, rid)",
            [dataset, sorted(set(known.values())), list(known), min(rids), max(rids), rids]
        ).fetchall()
        for rid, name, ver, value, label in got:
            if known.get(name) == ver:
                by_rid[rid][name] = label if label is not None else value
    for r in rows:
        r["scores"] = by_rid[r["rid"]]


def count(store: Store, ref: str, conditions: list[Condition] | str | None = None) -> int:
    with store.connect() as con:
        dataset, version = _resolve(con, ref)
        return _count(con, dataset, version, _as_conditions(conditions))


def filter_version(store: Store, ref: str, conditions: list[Condition] | str,
                   out: str | None = None) -> dict:
    """New version with the rows that match (flags kept); returns {ref, n_rows, n_removed}."""
    conds = _as_conditions(conditions)
    if not conds:
        raise StudioError("filter: give at least one condition (--where)")
    with store.transaction() as con:
        dataset, version = _resolve(con, ref)
        sql, params, _ = filtered_sql(con, dataset, version, conds,
                                      "vr.uid, vr.split, vr.dup_cluster, vr.is_dup")
        name = V.create_version(con, dataset, version, "filter",
                                {"where": [c.__dict__ for c in conds]}, sql, params, out)
        n_new, n_old = con.execute(
            "SELECT (SELECT n_rows FROM versions WHERE dataset = ? AND version = ?), "
            "(SELECT n_rows FROM versions WHERE dataset = ? AND version = ?)",
            [dataset, name, dataset, version]).fetchone()
    return {"ref": f"{dataset}@{name}", "parent": f"{dataset}@{version}", "n_rows": n_new,
            "n_removed": n_old - n_new}
