"""Listings the front ends show: checkpoint ids in comparison order and run names.

Runs themselves are listed by `kernel.jobs.list_runs` (it ingests run folders first).
"""

from __future__ import annotations

from pathlib import Path


def checkpoint_ids(store) -> list[str]:
    """Base models first, then run checkpoints by run and step (the order a user compares them in)."""
    return [r["id"] for r in store.query(
        "SELECT id FROM checkpoints ORDER BY (run_id IS NOT NULL), run_id, step, id")]


def run_names(store) -> dict[str, str]:
    """run id -> the name the user gave it (runs without one are left out)."""
    return {r["id"]: r["name"] for r in store.query("SELECT id, name FROM runs WHERE name <> ''")}


def model_folders(models_dir) -> list[str]:
    """Models built in a workspace's models/ folder (e.g. the offline tiny model), as
    base-model suggestions."""
    if not models_dir.exists():
        return []
    return sorted(str(p) for p in models_dir.iterdir() if (p / "config.json").exists())


def is_fine_tune(folder) -> bool:
    """A folder written by `training.merge` (a merged checkpoint), not a base model."""
    from training.merge import PROVENANCE_EXPORT

    return (Path(folder) / PROVENANCE_EXPORT).exists()


def base_model_choices(store) -> list[str]:
    """What a base-model picker offers, the default first: imported models by name
    (`studio model list`), then other model folders in the workspace (e.g. the demo's tiny
    model), by path, and merged fine-tunes last (never the default base model)."""
    from training.models import list_models

    names = [m.name for m in list_models(store)]
    models_dir = store.workspace.root / "models"
    imported = {str((models_dir / n).resolve()) for n in names}
    folders = [f for f in model_folders(models_dir) if str(Path(f).resolve()) not in imported]
    return names + sorted(folders, key=is_fine_tune)
