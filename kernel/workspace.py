"""The workspace: one folder holding the DuckDB store and the files jobs write.

Layout (all paths derive from the root, so a workspace can be moved or zipped):
    studio.duckdb        the store (datasets, versions, rows, scores, runs, checkpoints, evals)
    runs/<run_id>/       one folder per job: config, status.json, metrics.jsonl, log, checkpoints
    models/              models built or merged by the studio (e.g. the offline tiny model)
    exports/             default target of `studio export`
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from kernel.errors import StudioError

DEFAULT_WORKSPACE = "studio-workspace"
DB_FILENAME = "studio.duckdb"


def resolve_workspace_path(path: str | os.PathLike | None = None) -> Path:
    """--workspace wins, then $STUDIO_WORKSPACE, then ./studio-workspace."""
    chosen = path or os.environ.get("STUDIO_WORKSPACE") or DEFAULT_WORKSPACE
    return Path(chosen).expanduser().resolve()


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def open(cls, path: str | os.PathLike | None = None) -> Workspace:
        ws = cls(resolve_workspace_path(path))
        for folder in (ws.root, ws.runs_dir, ws.models_dir, ws.exports_dir):
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StudioError(f"workspace {ws.root}: cannot create folder {folder}: "
                                  f"{exc.strerror or exc}") from exc
        return ws

    @property
    def db_path(self) -> Path:
        return self.root / DB_FILENAME

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def exports_dir(self) -> Path:
        return self.root / "exports"

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id
