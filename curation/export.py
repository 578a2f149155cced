"""Export a version to JSONL, Parquet or a `datasets` folder (streamed by DuckDB's COPY).

Exported rows carry `id` and the canonical fields (messages, instruction, response, system,
category, tags, tools, split), so `import_file` on the export detects the chat format, keeps
the ids, the tool calls and tool schemas, the split, and reproduces the same content hashes: a
round trip.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from curation.datasets import _resolve
from curation.errors import StudioError
from curation.store import Store

FORMATS = ("jsonl", "parquet", "hf")
_SELECT = ("SELECT r.id, r.messages, r.instruction, r.response, r.system, r.category, r.tags, "
           "json_extract(r.metadata, '$.tools') AS tools, vr.split FROM version_rows vr JOIN rows r ON r.uid = vr.uid "
           "WHERE vr.dataset = ? AND vr.version = ?")


def export(store: Store, ref: str, path: str | Path, format: str = "jsonl",
           split: str | None = None, include_dups: bool = False) -> dict:
    """Write the version's rows (duplicates left out unless asked) to `path`."""
    if format not in FORMATS:
        raise StudioError(f"export: unknown format {format!r}; use one of {', '.join(FORMATS)}")
    if split not in (None, "train", "heldout"):
        raise StudioError(f"export: split must be train or heldout, not {split!r}")
    path = Path(path)
    if path.exists() and (format == "hf" or path.is_dir()):
        raise StudioError(f"export: {path} already exists")
    path.parent.mkdir(parents=True, exist_ok=True)
    with store.connect() as con:
        dataset, version = _resolve(con, ref)
        sql = _SELECT + ("" if include_dups else " AND NOT vr.is_dup")
        params: list = [dataset, version]
        if split:
            sql += " AND vr.split = ?"
            params.append(split)
        sql += " ORDER BY vr.rowid"
        n = con.execute(f"SELECT count(*) FROM ({sql})", params).fetchone()[0]
        if format == "jsonl":
            con.execute(f"COPY ({sql}) TO '{_quote(path)}' (FORMAT json)", params)
        elif format == "parquet":
            con.execute(f"COPY ({sql}) TO '{_quote(path)}' (FORMAT parquet)", params)
        else:
            tmp = Path(tempfile.mkdtemp(prefix="studio-export-"))
            try:
                # messages as a real list of structs, so `datasets` sees nested features; as
                # JSON text when turns carry more than role and content (tool calls, parts),
                # which a fixed struct would drop (import parses it back)
                plain = not con.execute(
                    f"SELECT bool_or(regexp_matches(CAST(messages AS VARCHAR), "
                    f"'\"(tool_calls|tool_call_id|name|parts)\":')) FROM ({sql})", params
                ).fetchone()[0]
                msgs = ("from_json(messages, '[{\"role\":\"VARCHAR\",\"content\":\"VARCHAR\"}]')"
                        if plain else "CAST(messages AS VARCHAR)")
                con.execute(f"COPY (SELECT * REPLACE ({msgs} AS messages, CAST(tools AS VARCHAR) "
                            f"AS tools) FROM ({sql})) TO '{_quote(tmp / 'rows.parquet')}' "
                            "(FORMAT parquet)", params)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
    if format == "hf":
        import datasets

        try:
            datasets.Dataset.from_parquet(str(tmp / "rows.parquet")).save_to_disk(str(path))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return {"ref": f"{dataset}@{version}", "path": str(path), "format": format, "n_rows": n}


def _quote(path: Path) -> str:
    """COPY TO takes no parameter for its target; quote the path as an SQL string literal."""
    return str(path.resolve()).replace("'", "''")
