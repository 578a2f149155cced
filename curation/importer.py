"""Import a file or HF dataset as a new dataset (version `v1`), atomically and streamed.

Steps, all inside one transaction so a bad file changes nothing: stage the source with DuckDB
(`readers.stage`), detect the format from its keys (`formats.detect_format`), normalize with SQL
(`formats.normalize_sql`), stop at the first invalid record (naming file, line and field), then
insert rows, the dataset and its first version. `preview` does the same on the first records in
a throwaway in-memory database, so the UI can show the detected format before committing.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import duckdb

from curation import formats, readers
from curation.errors import StudioError
from curation.store import Store
from curation.versions import check_name

Progress = Callable[[int, int], None]

UNIT = {"jsonl": "line", "csv": "line", "json": "record", "parquet": "row",
        "hf_disk": "row", "hf_hub": "row"}


def _detect(con: duckdb.DuckDBPyConnection, fmt: str | None,
            mapping: dict[str, str] | None) -> tuple[str, dict[str, str]]:
    keys, item_keys = formats.staged_keys(con)
    if fmt is None:
        if mapping and "messages" in mapping:
            fmt = "chat"
        elif mapping and "conversations" in mapping:
            fmt = "sharegpt"
        elif mapping and {"instruction", "response"} <= set(mapping):
            fmt = "alpaca"
        else:
            fmt = formats.detect_format(keys, item_keys)
    return fmt, formats.resolve_mapping(fmt, keys, item_keys, mapping)


def _normalize(con: duckdb.DuckDBPyConnection, path: str, kind: str, fmt: str,
               mapping: dict[str, str]) -> None:
    sql, params = formats.normalize_sql(fmt, mapping)
    con.execute(f"CREATE TEMP TABLE _norm AS SELECT *, md5(CAST(messages AS VARCHAR)) "
                f"AS content_hash FROM ({sql})", params)


def _new_rows(con: duckdb.DuckDBPyConnection, name: str, source: str, out: Path) -> None:
    """The rows to insert, with their uids and ids, written to `out` (Parquet) in source order.
    Ids: the source's own when present and unique; else from the content hash (+ the
    occurrence number for exact duplicates), so re-importing the same data gives the same ids.
    Window functions run only over the (usually few) duplicated rows."""
    con.execute("CREATE TEMP TABLE _dup_src AS SELECT src_id FROM _norm WHERE src_id IS NOT NULL "
                "GROUP BY src_id HAVING count(*) > 1")
    con.execute("CREATE TEMP TABLE _occ AS SELECT line, row_number() OVER "
                "(PARTITION BY content_hash ORDER BY line) AS k FROM _norm WHERE content_hash IN "
                "(SELECT content_hash FROM _norm GROUP BY 1 HAVING count(*) > 1)")
    con.execute(f"""
        COPY (
        SELECT md5(? || chr(31) || id || chr(31) || content_hash) AS uid, ? AS dataset, id,
               CAST(messages AS VARCHAR) AS messages, system, instruction, response, n_turns,
               ? AS source_file, line, content_hash, tags, category
        FROM (
          SELECT n.*, CASE
              WHEN src_id IS NOT NULL AND src_id NOT IN (SELECT src_id FROM _dup_src) THEN src_id
              WHEN coalesce(o.k, 1) = 1 THEN substr(content_hash, 1, 16)
              ELSE substr(md5(content_hash || ':' || o.k), 1, 16) END AS id
          FROM _norm n LEFT JOIN _occ o USING (line))
        ORDER BY line) TO '{str(out).replace("'", "''")}' (FORMAT parquet)""",
                [name, name, source])


# Per chunk of staged rows: rid unique and in source order (the chunk starts after the
# largest rid so far), the rows, and the same rows in version v1, in source order.
_WRITE_CHUNK = [
    """CREATE TEMP TABLE _c AS SELECT *, (SELECT coalesce(max(rid), 0) FROM rows) + line
       - (SELECT min(line) FROM _chunk) + 1 AS rid FROM _chunk""",
    """INSERT INTO rows (uid, dataset, id, messages, system, instruction, response, n_turns,
                        source_file, source_line, content_hash, tags, category, rid,
                        inst_chars, resp_chars)
       SELECT uid, dataset, id, messages, system, instruction, response, n_turns, source_file,
              line, content_hash, tags, category, rid, length(instruction), length(response)
       FROM _c ORDER BY line""",
    """INSERT INTO version_rows (dataset, version, uid, split, dup_cluster, is_dup, rid)
       SELECT dataset, 'v1', uid, 'train', NULL, false, rid FROM _c ORDER BY line""",
    "DROP TABLE _c",
]


def _first_error(con: duckdb.DuckDBPyConnection, path: str, kind: str) -> None:
    bad = con.execute("SELECT line, err FROM _norm WHERE err IS NOT NULL ORDER BY line LIMIT 1"
                      ).fetchone()
    if bad:
        raise StudioError(f"{path} {UNIT[kind]} {bad[0]}: {bad[1]}")


def import_file(store: Store, path: str | Path, name: str, format: str | None = None,
                mapping: dict[str, str] | None = None,
                progress: Progress | None = None) -> dict:
    """Import `path` as dataset `name`; returns {name, version, n_rows, format, mapping}."""
    check_name(name, "dataset")
    kind = readers.source_kind(path)
    source = str(Path(path).resolve()) if kind != "hf_hub" else str(path)
    if progress:
        progress(0, 3)
    # Read and normalize on a private in-memory database, then write in short chunks under a
    # claim (curation.staging): other processes are never locked out for the whole import.
    claim = store.claim(name, "v1", new_dataset=True)
    try:
        with store.stage_dir() as tmp:
            with duckdb.connect() as con:
                con.execute("SET enable_progress_bar = false")
                readers.stage(con, path, kind)
                fmt, used = _detect(con, format, mapping)
                _normalize(con, source, kind, fmt, used)
                _first_error(con, source, kind)
                if progress:
                    progress(1, 3)
                _new_rows(con, name, source, tmp / "rows.parquet")
            n = store.write_staged(claim, _WRITE_CHUNK, tmp / "rows.parquet")
        if progress:
            progress(2, 3)
        with store.commit_staged(claim) as con:
            con.execute("INSERT INTO datasets (name, source, format, mapping) VALUES (?, ?, ?, ?)",
                        [name, source, fmt, json.dumps(used)])
            con.execute("INSERT INTO versions (dataset, version, parent, operation, params, "
                        "n_rows, created_at) VALUES (?, 'v1', NULL, 'import', ?, ?, now())",
                        [name, json.dumps({"source": source, "format": fmt, "mapping": used},
                                          default=str), n])
        version = "v1"
    except BaseException:
        store.abandon_staged(claim)
        raise
    if progress:
        progress(3, 3)
    return {"name": name, "version": version, "n_rows": n, "format": fmt, "mapping": used,
            "source": source}


def _head_copy(path: Path, n_lines: int, tmpdir: str) -> Path:
    """First non-blank lines of a JSONL file, so a preview never stages a huge file."""
    out = Path(tmpdir) / path.name
    kept = 0
    with open(path, "rb") as src, open(out, "wb") as dst:
        for line in src:
            dst.write(line)
            kept += bool(line.strip())
            if kept >= n_lines:
                break
    return out


def preview(path: str | Path, format: str | None = None, mapping: dict[str, str] | None = None,
            n: int = 5) -> dict:
    """Detected kind, format, mapping and the first `n` normalized rows; writes nothing."""
    kind = readers.source_kind(path)
    with tempfile.TemporaryDirectory() as tmp, duckdb.connect() as con:
        src = Path(path)
        if kind == "jsonl":
            src = _head_copy(src, max(n, 500), tmp)
        readers.stage(con, src, kind)
        fmt, used = _detect(con, format, mapping)
        _normalize(con, str(path), kind, fmt, used)
        cur = con.execute("SELECT line, messages, system, instruction, response, src_id AS id, "
                          "category, tags, err FROM _norm ORDER BY line LIMIT ?", [n])
        cols = [d[0] for d in cur.description]
        rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
        keys, _ = formats.staged_keys(con)
    for r in rows:
        r["messages"] = json.loads(r["messages"]) if r["messages"] else None
    return {"kind": kind, "format": fmt, "mapping": used, "columns": sorted(keys), "rows": rows}
