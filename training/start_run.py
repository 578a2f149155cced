"""Start a training run: validate everything, export the rows, launch the job.

Why in the launcher process: every check that can fail on user input (config, model path,
dataset, split, max length, target modules) runs here, before any job or compute exists, and
the rows are exported to the run folder so the worker never needs the database.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from kernel import jobs
from training import provenance, tracking
from training.config import TrainConfig
from training.data import export_split, load_rows, split_rows
from training.preflight import preflight
from training.trainer import CONFIG_FILE


def prepare_training(store, cfg: TrainConfig) -> tuple[TrainConfig, list[dict], list[dict]]:
    """Resolved config and (train, eval) rows; raises StudioError on any bad input.
    An imported model's name (`studio model list`) becomes its folder here."""
    from training.models import resolve_base_model

    cfg = dataclasses.replace(cfg, base_model=resolve_base_model(store, cfg.base_model))
    cfg = provenance.pin_dataset(store, cfg)  # a bare NAME trains on (and records) NAME@latest
    rows = load_rows(store, cfg)
    train, evals = split_rows(rows, cfg.eval_fraction, cfg.seed)
    resolved = preflight(cfg, train)
    tracking.check_available(resolved)  # e.g. report_to wandb without wandb installed
    return resolved, train, evals


def launch_training(store, cfg: TrainConfig, prepared=None, extra_inputs=None) -> str:
    """Validate, export and start a training job; returns the run id. `extra_inputs(run_dir)`
    writes more input files before the job starts (a sweep's `training.halving` settings)."""
    resolved, train, evals = prepared or prepare_training(store, cfg)

    def write_inputs(run_dir: Path) -> None:
        resolved.to_yaml(run_dir / CONFIG_FILE)
        export_split(run_dir, train, evals)
        provenance.record(store, resolved, run_dir, train, evals)
        if extra_inputs is not None:
            extra_inputs(run_dir)

    run_id = jobs.launch(store, "train", "training.train_worker", config=resolved.to_dict(),
                         prepare=write_inputs, name=cfg.name or None)
    provenance.sync(store)
    return run_id


def launch_group(store, cfg: TrainConfig, seeds: list[int]) -> tuple[str, list[str]]:
    """One queued run per seed, recorded as a group; returns (group id, run ids).

    Every seed's config is validated before any job starts. Runs are named '<name>-seed<S>'
    (name = the config's name, else the group id), so a name glob finds them too.
    """
    from training.groups import add_member, parse_seeds, record_group

    seeds = parse_seeds(seeds)
    group_id = jobs.new_run_id("group")
    base = cfg.name or group_id
    cfgs = [dataclasses.replace(cfg, seed=s, name=f"{base}-seed{s}") for s in seeds]
    prepared = [prepare_training(store, c) for c in cfgs]
    shared = {k: v for k, v in prepared[0][0].to_dict().items() if k not in ("seed", "name")}
    with store.transaction() as con:
        record_group(con, group_id, cfg.name or None, shared)
    run_ids = []
    for seed, c, prep in zip(seeds, cfgs, prepared, strict=True):
        run_ids.append(launch_training(store, c, prep))
        with store.transaction() as con:
            add_member(con, group_id, run_ids[-1], seed)
    return group_id, run_ids


def wait_for_checkpoints(store, run_id: str, what: str, poll_s: float = 1.0,
                         on_metrics=None) -> tuple[dict, list[dict]]:
    """Wait for a training job; (its run, its checkpoints by step). A run that did not complete
    or saved no checkpoint is a StudioError naming `what` needed it (the demo, a fold run)."""
    from kernel.errors import StudioError
    from training.checkpoints import list_checkpoints

    run = jobs.wait(store, run_id, poll_s=poll_s, on_metrics=on_metrics)
    if run["state"] != "completed":
        raise StudioError(f"{what}: training run {run_id} ended {run['state']}: "
                          f"{run.get('error') or 'see ' + str(run['run_dir']) + '/log.txt'}")
    ckpts = sorted(list_checkpoints(store, run_id), key=lambda c: c["step"])
    if not ckpts:
        raise StudioError(f"{what}: training run {run_id} saved no checkpoint")
    return run, ckpts
