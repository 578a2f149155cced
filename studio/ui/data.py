"""Small shaping of library reads for the Datasets and Curate pages, and uploads.

The reads themselves are library calls (`curation.datasets`, `curation.overview`); only the
libraries know the schema. Row pages come from `curation.browse` (server-side paging).
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

from curation.datasets import list_datasets, list_versions
from curation.export import export
from kernel.store import Store

# export format -> (file suffix, MIME type) of what the browser downloads
DOWNLOADS = {"jsonl": (".jsonl", "application/jsonl"),
             "parquet": (".parquet", "application/vnd.apache.parquet"),
             "hf": (".zip", "application/zip")}


def dataset_overview(s: Store) -> list[dict]:
    """One line per dataset, newest first: latest version, number of versions, rows in it."""
    return [{"name": d["name"], "latest": d.get("latest"), "versions": d.get("n_versions"),
             "rows": d.get("n_rows"), "format": d.get("format"), "source": d.get("source"),
             "created_at": d.get("created_at")} for d in list_datasets(s)][::-1]


def versions_of(s: Store, dataset: str) -> list[dict]:
    """Versions newest first, with parent and operation (the lineage)."""
    return list(reversed(list_versions(s, dataset)))


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


def export_download(s: Store, ref: str, format: str, split: str | None = None) -> bytes:
    """The version exported by `curation.export` as the bytes of one file to download; an HF
    (`datasets`) folder comes zipped. Written in a temporary folder that is removed after."""
    with tempfile.TemporaryDirectory(prefix="studio-export-") as tmp:
        target = Path(tmp) / ("dataset" if format == "hf" else f"dataset{DOWNLOADS[format][0]}")
        export(s, ref, target, format=format, split=split)
        if format == "hf":
            target = Path(shutil.make_archive(str(target), "zip", root_dir=target))
        return target.read_bytes()


def download_name(ref: str, format: str) -> str:
    return UPLOAD_NAME.sub("-", ref.replace("@", "-")) + DOWNLOADS[format][0]


def messages_of(row: dict) -> list[dict]:
    """A row's conversation as a list of {role, content}, whatever form it came back in."""
    msgs = row.get("messages")
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
