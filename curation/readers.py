"""Stage a source (JSONL, JSON, CSV, Parquet, HF dataset) as a table `(line BIGINT, j JSON)`.

DuckDB streams the file; Python never holds all rows. When DuckDB rejects a file its message
does not name the right line, so on that error path only we stream the file once in Python to
find the first bad line and say what is wrong with it.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np

from curation.errors import StudioError

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
          table: str = "_stage") -> None:
    """Create TEMP table `table(line, j)` from the source; raise StudioError naming the line."""
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
            con.execute(f"CREATE TEMP TABLE {table} AS SELECT row_number() OVER () AS line, "
                        "json AS j FROM read_json_objects(?, format='auto')", [src])
        elif kind == "csv":
            # line = row + 1 for the header (a quoted field spanning lines shifts this)
            con.execute(f"CREATE TEMP TABLE {table} AS SELECT row_number() OVER () + 1 AS line, "
                        "to_json(t) AS j FROM read_csv(?, all_varchar=true, header=true) t", [src])
        elif kind == "parquet":
            con.execute(f"CREATE TEMP TABLE {table} AS SELECT file_row_number + 1 AS line, "
                        "to_json(t) AS j FROM (SELECT * EXCLUDE (file_row_number), "
                        "file_row_number FROM read_parquet(?, file_row_number=true)) t", [src])
        else:
            _stage_hf(con, src, kind, table)
    except duckdb.Error as exc:
        if kind in ("jsonl", "json"):
            _raise_json_error(p, kind, exc)
        raise StudioError(f"{p}: cannot read as {kind}: {str(exc).splitlines()[0]}") from exc
    n = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    if n == 0:
        raise StudioError(f"{p}: the file is empty (no records)")
    bad = con.execute(f"SELECT line FROM {table} WHERE json_type(j) <> 'OBJECT' ORDER BY line "
                      "LIMIT 1").fetchone()
    if bad:
        where = "record" if kind == "json" else "line"
        raise StudioError(f"{p} {where} {bad[0]}: expected a JSON object")


def _number_jsonl_lines(con: duckdb.DuckDBPyConnection, p: Path, table: str) -> None:
    """DuckDB skips blank lines; map record k to its real line number (numpy scan, no rows)."""
    blanks = _blank_lines(p)
    if not blanks.size:
        con.execute(f"CREATE TEMP TABLE {table} AS SELECT row_number() OVER () AS line, j "
                    f"FROM {table}_raw")
    else:
        import pyarrow as pa
        n_lines = _count_lines(p)
        keep = np.setdiff1d(np.arange(1, n_lines + 1, dtype=np.int64), blanks)
        con.register("_line_map", pa.table({"k": np.arange(1, keep.size + 1), "line": keep}))
        con.execute(f"CREATE TEMP TABLE {table} AS SELECT m.line, r.j FROM "
                    f"(SELECT row_number() OVER () AS k, j FROM {table}_raw) r "
                    "JOIN _line_map m USING (k)")
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
