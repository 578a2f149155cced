"""Export a version to JSONL, Parquet or a `datasets` folder (streamed by DuckDB's COPY).

Exported rows carry `id` and the canonical fields (messages, instruction, response, system,
category, tags, tools, split), so `import_file` on the export detects the chat format, keeps
the ids, the tool calls and tool schemas, the split, and reproduces the same content hashes: a
round trip.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
from pathlib import Path

import duckdb

from curation.datasets import resolve_ref as _resolve
from kernel.errors import StudioError
from kernel.processes import pid_alive
from kernel.store import Store

FORMATS = ("jsonl", "parquet", "hf")
_SELECT = ("SELECT r.id, r.messages, r.instruction, r.response, r.system, r.category, r.tags, "
           "json_extract(r.metadata, '$.tools') AS tools, vr.split FROM version_rows vr JOIN rows r ON r.uid = vr.uid "
           "WHERE vr.dataset = ? AND vr.version = ?")


def export(store: Store, ref: str, path: str | Path, format: str = "jsonl",
           split: str | None = None, include_dups: bool = False, force: bool = False) -> dict:
    """Write the version's rows (duplicates left out unless asked) to `path`.

    Safe for what is already there: an existing output is refused unless `force`, a symbolic
    link is never written through, and the data goes to a temp file in the same folder that
    is renamed into place at the end, so a killed export leaves no half file under the name
    (its temp file is removed by the next export to that folder)."""
    if format not in FORMATS:
        raise StudioError(f"export: unknown format {format!r}; use one of {', '.join(FORMATS)}")
    if split not in (None, "train", "heldout"):
        raise StudioError(f"export: split must be train or heldout, not {split!r}")
    path = Path(os.path.abspath(path))  # absolute, without resolving a link at the end
    _check_target(path, format, force)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StudioError(f"export: cannot create folder {path.parent}: "
                          f"{exc.strerror or exc}") from exc
    _remove_stale_temps(path)
    tmp = path.parent / f".{path.name}.export-{os.getpid()}-{secrets.token_hex(3)}.tmp"
    try:
        dataset, version, n = _write(store, ref, tmp, format, split, include_dups)
        _publish(tmp, path, force)
    except BaseException as exc:
        _remove(tmp)
        if isinstance(exc, (OSError, duckdb.IOException)):
            raise StudioError(f"export: cannot write {path}: {_reason(exc)}") from exc
        raise
    return {"ref": f"{dataset}@{version}", "path": str(path), "format": format, "n_rows": n}


def _check_target(path: Path, format: str, force: bool) -> None:
    if path.is_symlink():
        raise StudioError(f"export: {path} is a symbolic link; refusing to write through it "
                          "(remove it or choose another path)")
    if not path.exists():
        return
    if path.is_dir() and format != "hf":
        raise StudioError(f"export: {path} is a folder; give a file path")
    if not path.is_dir() and format == "hf":
        raise StudioError(f"export: {path} is a file; the hf format writes a folder")
    if not force:
        raise StudioError(f"export: {path} already exists; pass --force to replace it")


def _write(store: Store, ref: str, out: Path, format: str, split: str | None,
           include_dups: bool) -> tuple[str, str, int]:
    """Stream the rows to `out` (a file, or a folder for hf); returns (dataset, version, n)."""
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
            con.execute(f"COPY ({sql}) TO '{_quote(out)}' (FORMAT json)", params)
        elif format == "parquet":
            con.execute(f"COPY ({sql}) TO '{_quote(out)}' (FORMAT parquet)", params)
        else:
            out.mkdir()
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
                        f"AS tools) FROM ({sql})) TO '{_quote(out / 'rows.parquet')}' "
                        "(FORMAT parquet)", params)
    if format == "hf":
        import datasets

        parquet = out / "rows.parquet"
        datasets.Dataset.from_parquet(str(parquet), cache_dir=str(out / ".cache")).save_to_disk(
            str(out / "dataset"))
        final = out.with_name(out.name[: -len(".tmp")] + "-ds.tmp")
        os.rename(out / "dataset", final)
        shutil.rmtree(out)
        os.rename(final, out)
    return dataset, version, n


def _publish(tmp: Path, path: Path, force: bool) -> None:
    """Move the finished temp output to `path` atomically; never through a symlink."""
    if tmp.is_dir():
        old = None
        if force and path.is_dir() and not path.is_symlink():
            old = path.with_name(f".{path.name}.export-old-{os.getpid()}.tmp")
            os.rename(path, old)
        os.rename(tmp, path)  # fails on an existing non-empty folder: nothing is replaced
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return
    if force:
        os.replace(tmp, path)  # replaces a file or a link itself, never the link's target
        return
    try:
        os.link(tmp, path)  # no-clobber: fails if anything appeared under the name meanwhile
    except FileExistsError:
        raise StudioError(f"export: {path} already exists; pass --force to replace it") from None
    _remove(tmp)


def _remove_stale_temps(path: Path) -> None:
    """Temp outputs of exports to `path` whose process is gone (killed mid-write)."""
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.export-*.tmp"):
        pid = tmp.name.rsplit(".export-", 1)[1].split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            _remove(tmp)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc).splitlines()[0]


def _quote(path: Path) -> str:
    """COPY TO takes no parameter for its target; quote the path as an SQL string literal."""
    return str(path).replace("'", "''")
