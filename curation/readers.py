"""Stage a source (JSONL, JSON, CSV, Parquet, HF dataset) as a table `(line BIGINT, j JSON)`.

DuckDB streams the file; Python never holds all rows. When DuckDB rejects a file its message
does not name the right line, so on that error path only we stream the file once in Python to
find the first bad line and say what is wrong with it.

CSV is read strictly (RFC 4180: `,` between fields, `"` quotes, `""` for a quote inside a
quoted field): a broken quote is an error naming its line, never a silent quote-less parse.
`lenient=True` lets DuckDB's sniffer guess the dialect instead (what a malformed file needs).
A JSON file whose records sit under one key (`{"data": [...]}`) is read with `field="data"`.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import duckdb
import numpy as np

from kernel.errors import StudioError

EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv",
              ".parquet": "parquet", ".pq": "parquet"}


def source_kind(path: str | Path) -> str:
    """jsonl | json | csv | parquet | hf_disk | hf_hub, from the path (no reading)."""
    p = Path(path)
    if p.is_dir():
        if (p / "dataset_info.json").exists() or (p / "state.json").exists() \
                or (p / "dataset_dict.json").exists():
            return "hf_disk"
        raise StudioError(f"{p}: a folder that is not a `datasets` save_to_disk folder")
    if p.exists():
        kind = EXTENSIONS.get(p.suffix.lower())
        if kind is None:
            raise StudioError(f"{p}: unsupported file extension {p.suffix!r}; use one of "
                              f"{sorted(EXTENSIONS)} or a datasets folder")
        return kind
    if p.suffix or str(path).startswith((".", "/", "~")):
        raise StudioError(f"{p}: file not found")
    return "hf_hub"  # e.g. `tatsu-lab/alpaca`: anything `datasets.load_dataset` accepts


def stage(con: duckdb.DuckDBPyConnection, path: str | Path, kind: str,
          table: str = "_stage", lenient: bool = False, field: str | None = None) -> None:
    """Create TEMP table (or view) `table(line, j)` from the source; raise StudioError naming
    the line.

    `lenient`: CSV only, let DuckDB sniff the dialect instead of strict RFC 4180 quoting.
    `field`: the records are the list under this key of each top-level object."""
    p = Path(path)
    if kind in ("jsonl", "json", "csv", "parquet") and p.stat().st_size == 0:
        raise StudioError(f"{p}: the file is empty")
    src = str(p)
    try:
        if kind == "jsonl":
            con.execute(f"CREATE TEMP TABLE {table}_raw AS SELECT json AS j FROM "
                        "read_json_objects(?, format='newline_delimited')", [src])
            _number_jsonl_lines(con, p, table)
        elif kind == "json":
            # an array is read as one (a leading BOM hides it from format='auto')
            layout = "array" if _first_char(p) == "[" else "auto"
            con.execute(f"CREATE TEMP TABLE {table} AS SELECT row_number() OVER () AS line, "
                        f"json AS j FROM read_json_objects(?, format='{layout}')", [src])
        elif kind == "csv":
            # line = row + 1 for the header (a quoted field spanning lines shifts this)
            dialect = ("strict_mode=false" if lenient else
                       "skip=0, delim=',', quote='\"', escape='\"', strict_mode=true")
            con.execute(f"CREATE TEMP TABLE {table} AS SELECT row_number() OVER () + 1 AS line, "
                        f"to_json(t) AS j FROM read_csv(?, all_varchar=true, header=true, "
                        f"{dialect}) t", [src])
        elif kind == "parquet":
            # the record without the row-number column (else it would read as a field)
            con.execute(f"CREATE TEMP TABLE {table} AS SELECT file_row_number + 1 AS line, "
                        "json_merge_patch(to_json(t), '{\"file_row_number\": null}') AS j "
                        "FROM read_parquet(?, file_row_number=true) t", [src])
        else:
            _stage_hf(con, src, kind, table)
    except duckdb.Error as exc:
        if kind in ("jsonl", "json"):
            _raise_json_error(p, kind, exc)
        if kind == "csv" and not lenient:
            _raise_csv_error(p, exc)
        raise StudioError(f"{p}: cannot read as {kind}: {str(exc).splitlines()[0]}") from exc
    if field:
        _unwrap(con, p, kind, table, field)
    n = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    if n == 0:
        raise StudioError(f"{p}: the file is empty (no records)")
    # an object's text starts with '{' (DuckDB keeps no leading space): only the rest is parsed
    bad = con.execute(f"SELECT line FROM {table} WHERE CASE WHEN left(j::VARCHAR, 1) = '{{' "
                      "THEN false ELSE json_type(j) <> 'OBJECT' END ORDER BY line LIMIT 1"
                      ).fetchone()
    if bad:
        where = "record" if kind == "json" else "line"
        raise StudioError(f"{p} {where} {bad[0]}: expected a JSON object")


def _unwrap(con: duckdb.DuckDBPyConnection, p: Path, kind: str, table: str, field: str) -> None:
    """Replace the staged records by the objects listed under `field` in each of them."""
    from curation.formats import json_path

    path = json_path(field)
    bad = con.execute(f"SELECT line FROM {table} WHERE json_type(json_extract(j, ?)) IS DISTINCT FROM 'ARRAY' "
                      "ORDER BY line LIMIT 1", [path]).fetchone()
    if bad:
        where = "record" if kind == "json" else "line"
        raise StudioError(f"{p} {where} {bad[0]}: --field {field}: no list under the key "
                          f"{field!r}")
    con.execute(f"CREATE TEMP TABLE {table}_items AS SELECT row_number() OVER (ORDER BY line, i) "
                "AS line, e AS j FROM (SELECT line, unnest(l) AS e, generate_subscripts(l, 1) AS i "
                f"FROM (SELECT line, from_json(json_extract(j, ?), '[\"JSON\"]') AS l FROM {table}))", [path])
    is_view = con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = ?",
                          [table]).fetchall()[0][0]
    con.execute(f"DROP {'VIEW' if is_view else 'TABLE'} {table}")
    con.execute(f"ALTER TABLE {table}_items RENAME TO {table}")


def wrapper_keys(con: duckdb.DuckDBPyConnection, table: str = "_stage") -> list[tuple[str, int]]:
    """Keys of a lone record whose value is a list of objects, with the list's length: a
    file like `{"data": [...]}` holds its records there (offered as `--field KEY`)."""
    got = con.execute(f"SELECT any_value(j), count(*) FROM {table}").fetchone()
    if got[1] != 1:  # a wrapper is one object holding every record
        return []
    record = json.loads(got[0])
    return [(k, len(v)) for k, v in record.items()
            if isinstance(v, list) and v and isinstance(v[0], dict)]


def _first_char(p: Path) -> str:
    """First non-blank character of a file, after a UTF-8 byte order mark."""
    with open(p, "rb") as f:
        head = f.read(4096)
    return head.removeprefix(b"\xef\xbb\xbf").lstrip()[:1].decode("latin-1")


def _raise_csv_error(p: Path, exc: Exception) -> None:
    """Find the first malformed CSV record in Python (error path only) and name its line."""
    hint = "a quote inside a quoted field must be doubled (\"\"); --lenient reads it anyway"
    with open(p, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f, strict=True)
        start, width = 1, None
        try:
            for row in reader:
                if width is None:
                    width = len(row)
                elif row and len(row) != width:
                    raise StudioError(f"{p} line {start}: malformed CSV: {len(row)} fields where "
                                      f"the header has {width}; --lenient reads it anyway") from exc
                start = reader.line_num + 1
        except csv.Error as err:
            where = f"line {reader.line_num}" if reader.line_num == start else \
                f"line {start} (the record runs to line {reader.line_num})"
            raise StudioError(f"{p} {where}: malformed CSV: {err}; {hint}") from exc
    raise StudioError(f"{p}: malformed CSV (strict RFC 4180 quoting): "
                      f"{str(exc).splitlines()[0]}; --lenient reads it anyway") from exc


def _number_jsonl_lines(con: duckdb.DuckDBPyConnection, p: Path, table: str) -> None:
    """DuckDB skips blank lines; map record k to its real line number. DuckDB keeps each
    record's text as it is in the file, less the whitespace around it, so when the records'
    bytes plus one newline each add up to the file's size, no line is blank and record k is
    line k: the line is the row id of the staged records, a view with no copy and no window
    over all rows (a copy numbered by row_number() took as long as reading the file), and the
    file is not read again. Otherwise its lines are counted, and where there are more lines
    than records a numpy scan finds the blank ones."""
    n_records, n_bytes = con.execute(f"SELECT count(*), coalesce(sum(strlen(j::VARCHAR)), 0) "
                                     f"FROM {table}_raw").fetchall()[0]
    size = p.stat().st_size
    with open(p, "rb") as f:
        f.seek(size - 1)
        newlines = n_records if f.read(1) == b"\n" else n_records - 1
    n_lines = n_records if n_bytes + newlines == size else _count_lines(p)
    if n_lines == n_records:
        con.execute(f"CREATE TEMP VIEW {table} AS SELECT rowid + 1 AS line, j FROM {table}_raw")
        return
    blanks = _blank_lines(p)
    import pyarrow as pa
    keep = np.setdiff1d(np.arange(1, n_lines + 1, dtype=np.int64), blanks)
    con.register("_line_map", pa.table({"k": np.arange(1, keep.size + 1), "line": keep}))
    con.execute(f"CREATE TEMP TABLE {table} AS SELECT m.line, r.j FROM "
                f"(SELECT rowid + 1 AS k, j FROM {table}_raw) r JOIN _line_map m USING (k)")
    con.unregister("_line_map")
    con.execute(f"DROP TABLE {table}_raw")


def _iter_chunks(p: Path, size: int = 1 << 24):
    with open(p, "rb") as f:
        while chunk := f.read(size):
            yield chunk


def _count_lines(p: Path) -> int:
    n, last = 0, b"\n"
    for chunk in _iter_chunks(p):
        n += chunk.count(b"\n")
        last = chunk[-1:]
    return n + (last != b"\n")


def _blank_lines(p: Path) -> np.ndarray:
    """1-based numbers of whitespace-only lines, found with vectorized newline positions."""
    found: list[np.ndarray] = []
    line0, carry = 0, b""
    for chunk in _iter_chunks(p):
        buf = carry + chunk
        arr = np.frombuffer(buf, dtype=np.uint8)
        nl = np.flatnonzero(arr == 10)
        if nl.size == 0:
            carry = buf
            continue
        starts = np.concatenate(([0], nl[:-1] + 1))
        lengths = nl - starts
        cand = np.flatnonzero(lengths <= 8)  # blank lines are short; check their bytes
        blank = [i for i in cand if not buf[starts[i]:nl[i]].strip()]
        if blank:
            found.append(np.asarray(blank, dtype=np.int64) + line0 + 1)
        line0 += nl.size
        carry = buf[nl[-1] + 1:]
    if carry and not carry.strip():
        found.append(np.asarray([line0 + 1], dtype=np.int64))
    return np.concatenate(found) if found else np.empty(0, dtype=np.int64)


def _raise_json_error(p: Path, kind: str, exc: Exception) -> None:
    """Find the first bad line in Python (error path only) and raise a precise StudioError."""
    if kind == "json":
        raw = p.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as ude:
            line = raw[: ude.start].count(b"\n") + 1
            raise StudioError(f"{p} line {line}: invalid UTF-8 (byte {ude.start})") from exc
        try:
            json.loads(text)
        except json.JSONDecodeError as jde:
            raise StudioError(f"{p} line {jde.lineno}: malformed JSON: {jde.msg}") from exc
        raise StudioError(f"{p}: cannot read JSON: {str(exc).splitlines()[0]}") from exc
    with open(p, "rb") as f:
        for lineno, raw_line in enumerate(f, start=1):
            try:
                text = raw_line.decode("utf-8")
            except UnicodeDecodeError as ude:
                raise StudioError(f"{p} line {lineno}: invalid UTF-8 (column {ude.start + 1})") from exc
            if not text.strip():
                continue
            try:
                json.loads(text)
            except json.JSONDecodeError as jde:
                raise StudioError(f"{p} line {lineno}: malformed JSON: {jde.msg} "
                                  f"(column {jde.colno})") from exc
    raise StudioError(f"{p}: cannot read JSONL: {str(exc).splitlines()[0]}") from exc


def _stage_hf(con: duckdb.DuckDBPyConnection, src: str, kind: str, table: str) -> None:
    """A `datasets` folder or hub name: its Arrow table (memory-mapped) scanned by DuckDB."""
    import datasets

    try:
        ds = datasets.load_from_disk(src) if kind == "hf_disk" else datasets.load_dataset(src)
    except Exception as exc:  # datasets raises many types; the user needs one line
        raise StudioError(f"{src}: cannot load as a `datasets` dataset: {exc}") from exc
    if isinstance(ds, (datasets.DatasetDict, dict)):
        split = "train" if "train" in ds else next(iter(ds))
        ds = ds[split]
    if getattr(ds, "_indices", None) is not None:  # a selected/shuffled view: materialize order
        ds = ds.flatten_indices()
    arrow = ds.data.table
    con.register("_hf_src", arrow)
    con.execute(f"CREATE TEMP TABLE {table} AS SELECT row_number() OVER () AS line, "
                "to_json(t) AS j FROM _hf_src t")
    con.unregister("_hf_src")
