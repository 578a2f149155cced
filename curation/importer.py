"""Import a file or HF dataset as a new dataset (version `v1`), atomically and streamed.

Steps: stage the source with DuckDB (`readers.stage`), detect the format from its keys
(`formats.detect_format`), normalize with SQL (`formats.normalize_sql`), stop at the first
invalid record (naming file, line and field; on that path, say which records look like which
format when the file mixes them), count what normalization changed (`changes`: values coerced
to text, repeated source ids replaced, fields dropped, conversations that start with the
assistant; `strict=True` refuses them), build the final rows (ids, uids, hashes, the v1 split
from a `split` column such as `studio export` writes). All of that runs in SQL on a private
in-memory DuckDB, no per-row Python and no store lock held. The rows then go into the store
in short chunks under a claim (`kernel.staging`: readers get in between chunks), invisible
until one short transaction inserts the `datasets` and `versions` rows; a failed or killed
import leaves only unreferenced rows, deleted at once or by the next sweep. While the store
process runs (a big file starts it: `_direct`), the same SQL runs on its connection instead and
one transaction writes everything: no rows cross its socket, readers read on (MVCC). `preview` does the
same on the first records, so the UI can show the detected format before committing.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb

from curation import formats, readers
from curation.versions import check_name
from kernel import staging
from kernel.errors import StudioError
from kernel.migrations import plain_messages_sql
from kernel.store import Store

Progress = Callable[[int, int], None]

BIG_IMPORT_BYTES = 32 << 20  # a file this big starts the store process (see _direct)

UNIT = {"jsonl": "line", "csv": "line", "json": "record", "parquet": "row",
        "hf_disk": "row", "hf_hub": "row"}


def _detect(con: duckdb.DuckDBPyConnection, path: str, kind: str, fmt: str | None,
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
            wrapped = readers.wrapper_keys(con)
            if formats.format_of_keys(keys, item_keys) is None and wrapped:
                key, n = wrapped[0]
                raise StudioError(f"{path}: the records are in a list under the top-level key "
                                  f"{key!r} ({n} items), not at the top level; use --field {key}")
            try:
                fmt = formats.detect_format(keys, item_keys)
            except StudioError as exc:
                raise StudioError(f"{path}: {exc}") from None
    return fmt, formats.resolve_mapping(fmt, keys, item_keys, mapping)


def _normalize(con: duckdb.DuckDBPyConnection, fmt: str, mapping: dict[str, str],
               keep_messages: bool = True) -> None:
    """`_norm`: canonical columns, error and change flags; content_hash = md5 of the full
    canonical messages (every turn, tool calls included). Without `keep_messages` the
    messages text is hashed but not kept (a flat format's rows store none: migration 0086)."""
    formats.define_macros(con)
    sql, params = formats.normalize_sql(fmt, mapping)
    keep = "*" if keep_messages else "* EXCLUDE (messages)"
    con.execute(f"CREATE TEMP TABLE _norm AS SELECT {keep}, md5(CAST(messages AS VARCHAR)) "
                f"AS content_hash FROM ({sql})", params)


def _occurrences(con: duckdb.DuckDBPyConnection) -> None:
    """`_occ`: the occurrence number of each exactly repeated row (a window over the
    usually few duplicated rows only). They are found by grouping a 64-bit hash of the hex
    md5, twice as fast as grouping the text; a collision only adds a row that is numbered 1
    in its own partition, as if it were absent."""
    con.execute("CREATE TEMP TABLE _occ AS SELECT line, row_number() OVER "
                "(PARTITION BY content_hash ORDER BY line) AS k FROM _norm WHERE "
                "hash(content_hash) IN (SELECT hash(content_hash) FROM _norm GROUP BY 1 "
                "HAVING count(*) > 1)")


def _final_sql(fmt: str, split_from_source: bool) -> str:
    """The rows as they will be stored (with the v1 split), in source order, from `_norm`,
    `_occ` and `_dup_src`; its one parameter is the dataset name. `messages` is stored only
    when it is more than a plain single turn (the `rows` view derives it from the text columns
    otherwise: migration 0086). Ids: the source's own when present and unique; else from the
    content hash (+ the occurrence number for exact duplicates), so re-importing the same data
    gives the same ids."""
    split = "coalesce(src_split, 'train')" if split_from_source else "'train'"
    plain = plain_messages_sql("system", "instruction", "response")
    messages = ("CAST(NULL AS JSON)" if fmt in formats.FLAT_FORMATS else
                f"CASE WHEN messages = {plain} THEN NULL ELSE messages END")
    return f"""
        SELECT md5(? || chr(31) || id || chr(31) || content_hash) AS uid, id,
               {messages} AS messages, system, instruction, response, n_turns, line AS source_line,
               content_hash, tags, category, length(instruction) AS inst_chars,
               length(response) AS resp_chars,
               CASE WHEN tools IS NOT NULL THEN json_object('tools', tools) END AS metadata,
               {split} AS split
        FROM (
          SELECT n.*, CASE
              WHEN src_id IS NOT NULL AND src_id NOT IN (SELECT src_id FROM _dup_src) THEN src_id
              WHEN o.k IS NULL OR o.k = 1 THEN substr(content_hash, 1, 16)
              ELSE substr(md5(content_hash || ':' || o.k), 1, 16) END AS id
          FROM _norm n LEFT JOIN _occ o USING (line))"""


def _final_rows(con: duckdb.DuckDBPyConnection, name: str, fmt: str, split_from_source: bool):
    """`_final_sql` streamed by one query as Arrow record batches in source order: no sort
    (sorting 1M wide rows took longer than the whole rest of the import) and no re-scan per
    chunk."""
    _occurrences(con)
    return con.sql(_final_sql(fmt, split_from_source), params=[name]).to_arrow_reader(
        staging.MAX_ROWS)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


_ROW_COLUMNS = ("uid, dataset, id, messages, system, instruction, response, n_turns, "
                "source_file, source_line, content_hash, tags, category, rid, inst_chars, "
                "resp_chars, metadata")
_ROW_VALUES = ("uid, ?, id, messages, system, instruction, response, n_turns, ?, source_line, "
               "content_hash, tags, category, getvariable('studio_rid0') + source_line, "
               "inst_chars, resp_chars, metadata")


def _write_chunk(name: str, source: str) -> list[tuple[str, list]]:
    """The statements that store one chunk of final rows (read as `_chunk`): its row keys start
    after the largest one in the store (chunks of two imports interleave but never collide,
    and stay in source order within each), then the rows and their v1 entries, in order."""
    return [
        ("SET VARIABLE studio_rid0 = (SELECT coalesce(max(rid), 0) FROM row_data) "
         "- (SELECT min(source_line) FROM _chunk) + 1", []),
        (f"INSERT INTO row_data ({_ROW_COLUMNS}) SELECT {_ROW_VALUES} FROM _chunk",
         [name, source]),  # in source order already: a sort here is slow
        ("""INSERT INTO version_rows (dataset, version, uid, split, dup_cluster, is_dup, rid)
            SELECT ?, 'v1', uid, split, NULL, false, getvariable('studio_rid0') + source_line
            FROM _chunk""", [name]),
    ]


def _direct(store: Store, kind: str, source: str) -> bool:
    """Compute and write the import inside the store process, in one transaction? When it
    runs (a file of BIG_IMPORT_BYTES or more starts it): the rows are computed where they are
    stored, with no copy between processes (1M rows, AMD EPYC: writing 1.7-2.5 s, against
    6.8-7.9 s streamed through its socket in chunks), and readers read on during the
    transaction (its MVCC), so the chunked turns that let readers in between are not needed
    there. Not with under 4x the file's size free (`staging.in_store_process`)."""
    if kind not in ("jsonl", "json", "csv", "parquet"):
        return False  # a `datasets` source is read in this process (its Arrow table)
    size = Path(source).stat().st_size
    return staging.in_store_process(store, lambda: size >= BIG_IMPORT_BYTES, 4 * size)


def _write_direct(con, name: str, source: str, fmt: str, split_from_source: bool,
                  params: dict) -> int:
    """Store the final rows, their v1 entries and the `datasets`/`versions` rows in one
    transaction on the connection that computed them; returns the number of rows."""
    _occurrences(con)
    with staging.transaction(con):
        staging.sweep(con)
        staging.check_new_dataset(con, name)
        con.execute("SET VARIABLE studio_rid_max = (SELECT coalesce(max(rid), 0) FROM row_data)")
        con.execute("SET VARIABLE studio_rid0 = getvariable('studio_rid_max') "
                    "- (SELECT min(line) FROM _norm) + 1")
        n = con.execute(f"INSERT INTO row_data ({_ROW_COLUMNS}) SELECT {_ROW_VALUES} FROM "
                        f"({_final_sql(fmt, False)})", [name, source, name]).fetchone()[0]
        split = ("coalesce((SELECT src_split FROM _norm n WHERE n.line = r.source_line), 'train')"
                 if split_from_source else "'train'")
        con.execute(f"""INSERT INTO version_rows (dataset, version, uid, split, dup_cluster,
                                                  is_dup, rid)
                        SELECT ?, 'v1', uid, {split}, NULL, false, rid FROM row_data r
                        WHERE dataset = ? AND rid > getvariable('studio_rid_max')""",
                    [name, name])
        _insert_dataset(con, name, source, fmt, params, n)
    return n


def _insert_dataset(con, name: str, source: str, fmt: str, params: dict, n: int) -> None:
    con.execute("INSERT INTO datasets (name, source, format, mapping) VALUES (?, ?, ?, ?)",
                [name, source, fmt, json.dumps(params["mapping"])])
    con.execute("INSERT INTO versions (dataset, version, parent, operation, params, "
                "n_rows, created_at) VALUES (?, 'v1', NULL, 'import', ?, ?, now())",
                [name, json.dumps(params, default=str), n])


def _first_error(con: duckdb.DuckDBPyConnection, path: str, kind: str) -> None:
    bad = con.execute("SELECT line, err FROM _norm WHERE err IS NOT NULL ORDER BY line LIMIT 1"
                      ).fetchone()
    if bad:
        _raise_if_mixed(con, path, kind)
        raise StudioError(f"{path} {UNIT[kind]} {bad[0]}: {bad[1]}")


def _raise_if_mixed(con: duckdb.DuckDBPyConnection, path: str, kind: str) -> None:
    """On the error path: when records look like different formats, say which look like which
    (a file concatenated from several sources is the usual cause of a 'missing' field)."""
    got = con.execute("""
        SELECT fmt, count(*), list(line ORDER BY line)[1:3] FROM (
          SELECT line, CASE
            WHEN list_has_any(k, ['messages', 'conversations']) THEN
              CASE WHEN json_keys(json_extract(coalesce(json_extract(j, '$.messages'), json_extract(j, '$.conversations')), 0))
                        @> ['from', 'value'] THEN 'sharegpt' ELSE 'chat' END
            WHEN list_contains(k, 'instruction') AND list_has_any(k, ['output', 'response'])
              THEN 'alpaca'
            WHEN k @> ['prompt', 'completion'] THEN 'prompt_completion'
            WHEN k @> ['question', 'answer'] THEN 'qa'
            ELSE 'none of the formats' END AS fmt
          FROM (SELECT line, j, json_keys(j) AS k FROM _stage))
        GROUP BY fmt ORDER BY min(line)""").fetchall()
    if sum(fmt in formats.FORMATS for fmt, _, _ in got) < 2:
        return
    unit = UNIT[kind]
    parts = [f"{fmt} ({n} {'rows' if n > 1 else 'row'}: {unit}s {', '.join(map(str, lines))}"
             f"{', ...' if n > len(lines) else ''})" for fmt, n, lines in got]
    raise StudioError(f"{path}: the {unit}s are in different formats: {'; '.join(parts)}; "
                      "import each format from its own file (or pass --format and --map)")


def _changes(con: duckdb.DuckDBPyConnection, fmt: str,
             mapping: dict[str, str]) -> tuple[dict, dict]:
    """What normalization changed, and what it kept that is worth knowing, counted in SQL.

    changes: coerced_to_text, ids_replaced, dropped_fields, starts_with_assistant (each
    {rows, first_line[, field]}); info: non_text_parts, tool_call_rows, tools_rows, heldout."""
    con.execute("CREATE TEMP TABLE _dup_src AS SELECT src_id FROM _norm WHERE src_id IS NOT NULL "
                "GROUP BY src_id HAVING count(*) > 1")
    (n_coerced, l_coerced, f_coerced, n_assist, l_assist, n_parts, n_calls, n_tools, n_heldout,
     n_badsplit, n_split) = con.execute("""
        SELECT count(*) FILTER (coerced IS NOT NULL), min(line) FILTER (coerced IS NOT NULL),
               arg_min(coerced, line) FILTER (coerced IS NOT NULL),
               count(*) FILTER (starts_assistant), min(line) FILTER (starts_assistant),
               count(*) FILTER (has_parts), count(*) FILTER (has_tool_calls),
               count(*) FILTER (tools IS NOT NULL), count(*) FILTER (src_split = 'heldout'),
               count(*) FILTER (src_split NOT IN ('train', 'heldout')),
               count(*) FILTER (src_split IS NOT NULL)
        FROM _norm""").fetchone()
    n_ids, l_ids = con.execute("SELECT count(*), min(line) FROM _norm WHERE src_id IN "
                               "(SELECT src_id FROM _dup_src)").fetchone()
    used = set(mapping.values()) - ({mapping["split"]} if n_badsplit else set())
    # a conversation's `instruction`/`response` beside it (as `studio export` writes them) are
    # derived from the turns: dropped only where they say something else
    derived = {"instruction", "response"} - used if fmt in ("chat", "sharegpt") else set()
    dropped = con.execute("""
        SELECT k, count(*), min(line) FROM (SELECT line, j, unnest(json_keys(j)) AS k FROM _stage)
        WHERE NOT list_contains(?, k)
          AND json_type(json_extract(j, '$."' || replace(k, '"', '\"') || '"')) <> 'NULL'
        GROUP BY k ORDER BY k""", [sorted(used | derived)]).fetchall()
    for key in sorted(derived):
        n, line = con.execute(
            f"SELECT count(*), min(s.line) FROM _stage s JOIN _norm n USING (line) "
            f"WHERE json_extract_string(s.j, ?) IS DISTINCT FROM n.{key} "
            "AND json_type(json_extract(s.j, ?)) <> 'NULL'",
            [formats.json_path(key)] * 2).fetchone()
        if n:
            dropped.append((key, n, line))
    changes: dict = {}
    if n_coerced:
        changes["coerced_to_text"] = {"rows": n_coerced, "first_line": l_coerced,
                                      "field": f_coerced}
    if n_ids:
        changes["ids_replaced"] = {"rows": n_ids, "first_line": l_ids}
    if dropped:
        changes["dropped_fields"] = {k: {"rows": n, "first_line": line} for k, n, line in dropped}
    if n_assist:
        changes["starts_with_assistant"] = {"rows": n_assist, "first_line": l_assist}
    info = {"non_text_parts": n_parts, "tool_call_rows": n_calls, "tools_rows": n_tools,
            "split_from_source": bool(n_split) and not n_badsplit,
            "heldout": n_heldout if not n_badsplit else 0}
    return changes, info


def describe_changes(changes: dict, info: dict, unit: str = "line") -> list[str]:
    """One readable phrase per change (CLI output, UI, --strict's refusal)."""
    out = []
    if c := changes.get("coerced_to_text"):
        out.append(f"{c['rows']} rows had non-text values stored as text "
                   f"(first: {unit} {c['first_line']}, field {c['field']})")
    if c := changes.get("ids_replaced"):
        out.append(f"{c['rows']} source ids replaced because they repeat "
                   f"(first: {unit} {c['first_line']})")
    if c := changes.get("dropped_fields"):
        out.append("fields dropped: " + ", ".join(
            f"{k} ({v['rows']} rows, first {unit} {v['first_line']})" for k, v in c.items()))
    if c := changes.get("starts_with_assistant"):
        out.append(f"{c['rows']} conversations start with the assistant "
                   f"(first: {unit} {c['first_line']})")
    if info.get("non_text_parts"):
        out.append(f"{info['non_text_parts']} rows have non-text content parts "
                   "(kept in the message as `parts`)")
    if info.get("tool_call_rows"):
        out.append(f"{info['tool_call_rows']} rows have tool calls")
    if info.get("split_from_source"):
        out.append(f"split taken from the source's `split` column ({info['heldout']} heldout)")
    return out


def import_file(store: Store, path: str | Path, name: str, format: str | None = None,
                mapping: dict[str, str] | None = None,
                progress: Progress | None = None, *, strict: bool = False,
                lenient: bool = False, field: str | None = None) -> dict:
    """Import `path` as dataset `name`; returns {name, version, n_rows, format, mapping,
    source, changes, info}.

    `changes` counts what normalization changed (values coerced to text, repeated source ids
    replaced, fields dropped, conversations that start with the assistant); `strict=True`
    refuses the import when there is any. `lenient=True` reads a malformed CSV anyway;
    `field` names the key whose list holds the records (`{"data": [...]}`). `seconds` in the
    result: wall time per phase (read, normalize, changes, write, commit; bench_1m prints it)."""
    check_name(name, "dataset")
    seconds: dict[str, float] = {}
    clock = [time.perf_counter()]

    def lap(phase: str) -> None:
        now = time.perf_counter()
        seconds[phase] = round(now - clock[0], 3)
        clock[0] = now

    kind = readers.source_kind(path)
    source = str(Path(path).resolve()) if kind != "hf_hub" else str(path)
    if progress:
        progress(0, 3)

    def prepare(con) -> tuple[str, dict, dict, dict]:
        """Stage, detect, normalize, check and count changes: temp tables on `con`."""
        con.execute("SET enable_progress_bar = false")
        readers.stage(con, source, kind, lenient=lenient, field=field)
        lap("read")
        fmt, used = _detect(con, source, kind, format, mapping)
        _normalize(con, fmt, used, keep_messages=fmt not in formats.FLAT_FORMATS)
        _first_error(con, source, kind)
        lap("normalize")
        changes, info = _changes(con, fmt, used)
        lap("changes")
        if strict and changes:
            raise StudioError(f"{source}: --strict refuses the import: "
                              + "; ".join(describe_changes(changes, {}, UNIT[kind])))
        if progress:
            progress(1, 3)
        return fmt, used, changes, info

    via = "store process" if _direct(store, kind, source) else "chunks"
    if via == "store process":
        lap("claim")  # here: starting the store process (when this import started it)
        with store.connect() as con:
            staging.check_new_dataset(con, name)  # before reading; the transaction checks again
            fmt, used, changes, info = prepare(con)
            params = {"source": source, "format": fmt, "mapping": used, "changes": changes,
                      "info": info}
            n = _write_direct(con, name, source, fmt, info["split_from_source"], params)
            lap("write")
        lap("commit")  # closing the connection drops its temp tables (in the store process too)
    else:
        # Everything is computed on a private in-memory DuckDB with no store lock held; the
        # rows then go into the store in short chunks under a claim (kernel.staging), invisible
        # until one short transaction adds the `datasets` and `versions` rows.
        claim = store.claim(name, "v1", new_dataset=True)
        lap("claim")
        try:
            with duckdb.connect() as con:
                fmt, used, changes, info = prepare(con)
                n = store.write_staged(claim, _write_chunk(name, source),
                                       _final_rows(con, name, fmt, info["split_from_source"]))
                lap("write")  # the final rows (ids, uids) are computed as they are written
            if progress:
                progress(2, 3)
            params = {"source": source, "format": fmt, "mapping": used, "changes": changes,
                      "info": info}
            with store.commit_staged(claim) as con:
                _insert_dataset(con, name, source, fmt, params, n)
            lap("commit")
        except BaseException:
            store.abandon_staged(claim)  # deletes what was written, gives the space back
            raise
    if progress:
        progress(3, 3)
    return {"name": name, "version": "v1", "n_rows": n, "format": fmt, "mapping": used,
            "source": source, "changes": changes, "info": info, "unit": UNIT[kind],
            "seconds": seconds, "via": via}


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
            n: int = 5, *, lenient: bool = False, field: str | None = None) -> dict:
    """Detected kind, format, mapping and the first `n` normalized rows; writes nothing."""
    kind = readers.source_kind(path)
    with tempfile.TemporaryDirectory() as tmp, duckdb.connect() as con:
        src = Path(path)
        if kind == "jsonl":
            src = _head_copy(src, max(n, 500), tmp)
        readers.stage(con, src, kind, lenient=lenient, field=field)
        fmt, used = _detect(con, str(path), kind, format, mapping)
        _normalize(con, fmt, used)
        cur = con.execute("SELECT line, messages, system, instruction, response, src_id AS id, "
                          "category, tags, err FROM _norm ORDER BY line LIMIT ?", [n])
        cols = [d[0] for d in cur.description]
        rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
        keys, _ = formats.staged_keys(con)
    for r in rows:
        r["messages"] = json.loads(r["messages"]) if r["messages"] else None
    return {"kind": kind, "format": fmt, "mapping": used, "columns": sorted(keys), "rows": rows}
