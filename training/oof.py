"""Out-of-fold response losses: a noisy-label score no model computed on rows it trained on.

Why: the in-sample loss of a model tuned on the very rows it judges depends on how that one run
went: a run that memorises the wrong answers gives them low loss, a run that learns too little
gives every row high loss. As in confident learning (Northcutt et al. 2021), the rows are split
into k folds (stratified by category, seeded); k short LoRA runs each train on all folds but
one and score the fold they never saw. A wrong answer then has a high loss because it
disagrees with what the clean majority taught, not because of luck in one run.

The k runs are ordinary durable training jobs (`studio runs` lists them, named
`oof-<dataset>-<version>-k<k>-fold<i>`); the scores are stored as `oof_loss` in a new version
(`curation.scoring.save_scores`), ready for `studio denoise` (whose default score it is), with
`oof_fold`, the fold whose model scored the row (denoise fits its cut per fold model).
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from curation.datasets import load_rows, resolve_ref
from curation.model_scores import ModelScoreConfig, response_losses
from curation.noisy_labels import OOF_FOLD_SCORE, OOF_SCORE, OOF_SCORER
from curation.scoring import save_scores
from kernel.errors import StudioError
from kernel.status import read_metrics
from training.checkpoints import resolve
from training.config import TrainConfig
from training.data import write_jsonl
from training.start_run import launch_training, wait_for_checkpoints

ROW_KEYS = ("id", "messages", "instruction", "response", "system", "category", "tools")

Log = Callable[[str], None]


@dataclass(frozen=True)
class FoldRun:
    """One fold model: what it trained on, its checkpoint and its training-loss curve."""

    fold: int
    run_id: str
    checkpoint: str
    n_train: int
    n_scored: int
    losses: list[float] = field(default_factory=list)   # logged training losses, in step order


@dataclass(frozen=True)
class OutOfFold:
    """Per-row out-of-fold loss (row id -> mean response token loss), the fold whose model
    scored each row (the denoise cut is fitted per fold model), and the fold runs."""

    losses: dict[str, float]
    folds: list[FoldRun]
    fold_of: dict[str, int] = field(default_factory=dict)


def assign_folds(rows: list[dict], k: int, seed: int) -> dict[str, int]:
    """Row id -> fold in 0..k-1: each category dealt round-robin after a seeded shuffle, so
    every fold holds about 1/k of every task (a fold model must know every task it scores)."""
    if k < 2:
        raise StudioError(f"out-of-fold scoring: folds must be >= 2, got {k}")
    by_cat: dict[str, list[str]] = {}
    for r in rows:
        by_cat.setdefault(str(r.get("category") or ""), []).append(str(r["id"]))
    rng = random.Random(seed)
    out: dict[str, int] = {}
    offset = 0
    for cat in sorted(by_cat):
        ids = sorted(by_cat[cat])
        rng.shuffle(ids)
        for j, i in enumerate(ids):
            out[i] = (j + offset) % k
        offset += len(ids)
    return out


def training_losses(run_dir) -> list[float]:
    """The logged training losses of a run, in step order."""
    return [float(r["loss"]) for r in read_metrics(run_dir) if isinstance(r.get("loss"), (int, float))]


def fold_config(cfg: TrainConfig, data_file: str, name: str) -> TrainConfig:
    """The user's LoRA settings, trained on one fold's file, saving only the final adapter."""
    steps = cfg.max_steps if cfg.max_steps > 0 else 0
    return dataclasses.replace(cfg, dataset="", data_file=data_file, name=name, eval_fraction=0.0,
                               early_stopping_patience=0, report_to=[],
                               save_steps=steps or cfg.save_steps)


def out_of_fold_losses(store, ref: str, cfg: TrainConfig, folds: int = 3, seed: int = 0,
                       batch_size: int = 64, max_length: int = 512,
                       log: Log | None = None) -> OutOfFold:
    """Train `folds` LoRA runs (each on all folds but one) and score each held-out fold."""
    if not cfg.base_model:
        raise StudioError("out-of-fold scoring needs a base model (--model)")
    dataset, version = resolve_ref(store, ref)
    rows = [{k: r.get(k) for k in ROW_KEYS} for r in load_rows(store, f"{dataset}@{version}")]
    if len(rows) < 2 * folds:
        raise StudioError(f"out-of-fold scoring: {dataset}@{version} has {len(rows)} rows, "
                          f"too few for {folds} folds")
    fold_of = assign_folds(rows, folds, seed)
    work = store.workspace.root / "oof" / f"{dataset}-{version}-k{folds}-s{seed}"
    work.mkdir(parents=True, exist_ok=True)
    losses: dict[str, float] = {}
    runs: list[FoldRun] = []
    for f in range(folds):
        train = [r for r in rows if fold_of[str(r["id"])] != f]
        held = [r for r in rows if fold_of[str(r["id"])] == f]
        path = work / f"fold-{f}-train.jsonl"
        write_jsonl(path, train)
        name = f"oof-{dataset}-{version}-k{folds}-fold{f}"
        run_id = launch_training(store, fold_config(cfg, str(path), name))
        if log:
            log(f"fold {f + 1}/{folds}: training {run_id} on {len(train)} rows")
        run, ckpts = wait_for_checkpoints(store, run_id, "out-of-fold scoring")
        model = resolve(store, ckpts[-1]["id"])
        score_cfg = ModelScoreConfig(model=model.base_model, adapter=model.adapter_path,
                                     batch_size=batch_size, max_length=max_length)
        cond, _ = response_losses(score_cfg, [r["messages"] for r in held])
        losses.update({str(r["id"]): float(x) for r, x in zip(held, cond, strict=True)
                       if math.isfinite(x)})
        runs.append(FoldRun(fold=f, run_id=run_id, checkpoint=ckpts[-1]["id"],
                            n_train=len(train), n_scored=len(held),
                            losses=training_losses(run["run_dir"])))
    return OutOfFold(losses=losses, folds=runs,
                     fold_of={i: fold_of[i] for i in losses})


def score_out_of_fold(store, ref: str, cfg: TrainConfig, folds: int = 3, seed: int = 0,
                      out: str | None = None, batch_size: int = 64, max_length: int = 512,
                      log: Log | None = None) -> dict:
    """`out_of_fold_losses`, stored as score `oof_loss` in a new version of `ref`."""
    got = out_of_fold_losses(store, ref, cfg, folds, seed, batch_size, max_length, log)
    result = save_scores(store, ref, {OOF_SCORE: got.losses, OOF_FOLD_SCORE: got.fold_of},
                         {"scorer": OOF_SCORER, "model": cfg.base_model, "folds": folds,
                          "seed": seed, "max_steps": cfg.max_steps,
                          "learning_rate": cfg.learning_rate,
                          "runs": [r.run_id for r in got.folds]}, out)
    return {**result, "runs": [dataclasses.asdict(r) for r in got.folds]}
