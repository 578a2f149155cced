"""Start a training run: validate everything, export the rows, launch the job.

Why in the launcher process: every check that can fail on user input (config, model path,
dataset, split, max length, target modules) runs here, before any job or compute exists, and
the rows are exported to the run folder so the worker never needs the database.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from training import jobs
from training.config import TrainConfig
from training.data import export_split, load_rows, split_rows
from training.preflight import preflight
from training.trainer import CONFIG_FILE


def prepare_training(store, cfg: TrainConfig) -> tuple[TrainConfig, list[dict], list[dict]]:
    """Resolved config and (train, eval) rows; raises StudioError on any bad input.
    An imported model's name (`studio model list`) becomes its folder here."""
    from training.models import resolve_base_model

    cfg = dataclasses.replace(cfg, base_model=resolve_base_model(store, cfg.base_model))
    rows = load_rows(store, cfg)
    train, evals = split_rows(rows, cfg.eval_fraction, cfg.seed)
    resolved = preflight(cfg, train)
    return resolved, train, evals


def launch_training(store, cfg: TrainConfig) -> str:
    """Validate, export and start a training job; returns the run id."""
    resolved, train, evals = prepare_training(store, cfg)

    def write_inputs(run_dir: Path) -> None:
        resolved.to_yaml(run_dir / CONFIG_FILE)
        export_split(run_dir, train, evals)

    return jobs.launch(store, "train", "training.worker", config=resolved.to_dict(),
                       prepare=write_inputs, name=cfg.name or None)
