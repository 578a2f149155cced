"""Small reads the Datasets and Curate pages render: lists, counts, histograms, uploads.

All of them are aggregate queries that return a handful of rows, so they stay fast on a
1M-row dataset; row pages come from the curation browse API (server-side LIMIT/OFFSET).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from curation.store import Store
from studio.ui.context import field, lib


def dataset_overview(s: Store) -> list[dict]:
    """One line per dataset: latest version, number of versions, rows in the latest version."""
    lister = lib("curation.datasets", "list_datasets")
    if lister is not None:
        out = [_as_dict(d) for d in lister(s)]
        return [{"name": d["name"], "latest": d.get("latest"), "versions": d.get("n_versions"),
                 "rows": d.get("n_rows"), "format": d.get("format"), "source": d.get("source"),
                 "created_at": d.get("created_at")} for d in out][::-1]
    return s.query("""
        WITH v AS (SELECT dataset, version, n_rows, created_at,
                          row_number() OVER (PARTITION BY dataset ORDER BY created_at DESC,
                                             version DESC) AS rk,
                          count(*) OVER (PARTITION BY dataset) AS n_versions
                   FROM versions)
        SELECT d.name, v.version AS latest, v.n_versions AS versions, v.n_rows AS rows,
               d.format, d.source, d.created_at
        FROM datasets d LEFT JOIN v ON v.dataset = d.name AND v.rk = 1
        ORDER BY d.created_at DESC, d.name""")


def versions_of(s: Store, dataset: str) -> list[dict]:
    """Versions newest first, with parent and operation (the lineage)."""
    lister = lib("curation.datasets", "list_versions")
    if lister is not None:
        return list(reversed(lister(s, dataset)))
    return s.query("SELECT version, parent, operation, params, n_rows, created_at FROM versions "
                   "WHERE dataset = ? ORDER BY created_at DESC, version DESC", [dataset])


def lineage(s: Store, dataset: str, version: str) -> list[str]:
    """The version and its ancestors: scores computed on an ancestor still apply."""
    fn = lib("curation.versions", "lineage")
    if fn is None:
        return [version]
    with s.connect() as con:
        return fn(con, dataset, version)


def score_names(s: Store, dataset: str, version: str) -> list[str]:
    return [r["name"] for r in s.query(
        "SELECT DISTINCT name FROM scores WHERE dataset = ? AND list_contains(?, version) "
        "AND value IS NOT NULL ORDER BY name", [dataset, lineage(s, dataset, version)])]


def score_ranges(s: Store, dataset: str, version: str) -> list[dict]:
    """min/max of each numeric score over the version's lineage (for threshold sliders)."""
    return s.query("SELECT name, min(value) AS lo, max(value) AS hi FROM scores WHERE dataset = ? "
                   "AND list_contains(?, version) AND value IS NOT NULL GROUP BY name ORDER BY name",
                   [dataset, lineage(s, dataset, version)])


LENGTH_COLUMNS = {"instruction chars": "length(r.instruction)",
                  "response chars": "length(r.response)",
                  "turns": "r.n_turns"}


def histogram(s: Store, dataset: str, version: str, measure: str, bins: int = 30) -> list[dict]:
    """Binned counts computed in DuckDB; `measure` is a LENGTH_COLUMNS key or 'score:<name>'."""
    if measure.startswith("score:"):
        source = ("SELECT arg_min(sc.value, list_position(?, sc.version)) AS x FROM scores sc "
                  "JOIN version_rows vr ON vr.uid = sc.uid AND vr.dataset = sc.dataset "
                  "AND vr.version = ? WHERE sc.dataset = ? AND list_contains(?, sc.version) "
                  "AND sc.name = ? AND sc.value IS NOT NULL GROUP BY sc.uid")
        chain = lineage(s, dataset, version)
        params: list[Any] = [chain, version, dataset, chain, measure[len("score:"):]]
    else:
        expr = LENGTH_COLUMNS[measure]  # a fixed expression from the dict, never user text
        source = (f"SELECT {expr} AS x FROM version_rows vr JOIN rows r ON r.uid = vr.uid "
                  "WHERE vr.dataset = ? AND vr.version = ?")
        params = [dataset, version]
    return s.query(f"""
        WITH src AS ({source}), b AS (SELECT min(x) AS lo, max(x) AS hi FROM src)
        SELECT lo + (hi - lo) * least(floor((x - lo) / nullif(hi - lo, 0) * ?), ? - 1) / ? AS bin,
               (hi - lo) / ? AS width, count(*) AS n
        FROM src, b GROUP BY ALL ORDER BY bin""", params + [bins, bins, bins, bins])


UPLOAD_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def save_upload(workspace_root: Path, name: str, data: bytes) -> Path:
    """Keep an uploaded file under <workspace>/uploads/ so import errors can name it."""
    folder = workspace_root / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (UPLOAD_NAME.sub("_", Path(name).name) or "upload")
    target.write_bytes(data)
    return target


def default_dataset_name(path: str) -> str:
    stem = Path(path.rstrip("/")).name.split(".")[0] or "dataset"
    return UPLOAD_NAME.sub("-", stem).strip("-").lower() or "dataset"


def messages_of(row: dict) -> list[dict]:
    """A row's conversation as a list of {role, content}, whatever form it came back in."""
    msgs = field(row, "messages")
    if isinstance(msgs, str):
        try:
            msgs = json.loads(msgs)
        except json.JSONDecodeError:
            msgs = None
    if not msgs:
        msgs = [m for m in ({"role": "system", "content": row.get("system")},
                            {"role": "user", "content": row.get("instruction")},
                            {"role": "assistant", "content": row.get("response")})
                if m["content"]]
    return list(msgs)


def _as_dict(obj: Any) -> dict:
    import dataclasses

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    return dict(obj)


def run_names(s: Store) -> dict[str, str]:
    """run id -> the name the user gave it (runs without one are left out)."""
    return {r["id"]: r["name"] for r in s.query("SELECT id, name FROM runs WHERE name <> ''")}
