"""Out-of-fold response losses: a noisy-label score no model computed on rows it trained on.

Why: the in-sample loss of a model tuned on the very rows it judges depends on how that one run
went: a run that memorises the wrong answers gives them low loss, a run that learns too little
gives every row high loss. As in confident learning (Northcutt et al. 2021), the rows are split
into k folds (stratified by category, seeded); k short LoRA runs each train on all folds but
one and score the fold they never saw. A wrong answer then has a high loss because it
disagrees with what the clean majority taught, not because of luck in one run.

A fold model that did not learn a task gives all of that task's held-out rows about the same
loss, and the cut then leaves the task unjudged (`curation.noisy_labels.loss_spread`), wrong
labels and all. Such a fold is trained once more with the next seed, and each task it failed
takes the retry's losses if they spread more (measured on two seeds that had one: recall
0.716 -> 0.827 and 0.846 -> 0.964, README measurement R).

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
from curation.noisy_labels import MIN_SPREAD, OOF_FOLD_SCORE, OOF_SCORE, OOF_SCORER, loss_spread
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
    # the retry of a fold model that did not learn a task: {run_id, checkpoint, seed, tasks:
    # {task: {spread, retry_spread, used}}}; None when every task's losses spread
    retry: dict | None = None


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


# A task needs this many held-out rows in a fold before its spread says anything (the cut's
# `min_group`: smaller groups are never judged, so retrying for them would change nothing).
MIN_TASK_ROWS = 20


def unlearnt_tasks(held: list[dict], losses: dict[str, float],
                   min_rows: int = MIN_TASK_ROWS) -> dict[str, float]:
    """Task -> spread of the tasks whose held-out losses do not spread (< MIN_SPREAD)."""
    return {task: spread for task, xs in _by_task(held, losses).items()
            if len(xs) >= min_rows and (spread := loss_spread(xs)) < MIN_SPREAD}


def _by_task(held: list[dict], losses: dict[str, float]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for r in held:
        if (x := losses.get(str(r["id"]))) is not None:
            out.setdefault(str(r.get("category") or ""), []).append(x)
    return out


def _train_and_score(store, cfg: TrainConfig, path, name: str, held: list[dict],
                     batch_size: int, max_length: int) -> tuple[dict, dict[str, float]]:
    """One fold model: train it on `path`, score `held` -> (run, {row id: loss})."""
    run_id = launch_training(store, fold_config(cfg, str(path), name))
    run, ckpts = wait_for_checkpoints(store, run_id, "out-of-fold scoring")
    model = resolve(store, ckpts[-1]["id"])
    score_cfg = ModelScoreConfig(model=model.base_model, adapter=model.adapter_path,
                                 batch_size=batch_size, max_length=max_length)
    cond, _ = response_losses(score_cfg, [r["messages"] for r in held])
    losses = {str(r["id"]): float(x) for r, x in zip(held, cond, strict=True) if math.isfinite(x)}
    return {**run, "run_id": run_id, "checkpoint": ckpts[-1]["id"]}, losses


def _retry(store, cfg: TrainConfig, path, name: str, held: list[dict], losses: dict[str, float],
           weak: dict[str, float], batch_size: int, max_length: int) -> dict:
    """Train the fold once more with the next seed; each weak task whose losses spread more
    under the retry takes them (in `losses`, in place). Returns the retry's record."""
    seed = cfg.seed + 1
    run, again = _train_and_score(store, dataclasses.replace(cfg, seed=seed), path,
                                  f"{name}-retry", held, batch_size, max_length)
    spread_again = {t: loss_spread(xs) for t, xs in _by_task(held, again).items()}
    tasks = {}
    for task, spread in weak.items():
        used = spread_again.get(task, 0.0) > spread
        tasks[task] = {"spread": spread, "retry_spread": spread_again.get(task, 0.0), "used": used}
        if used:
            losses.update({str(r["id"]): again[str(r["id"])] for r in held
                           if str(r.get("category") or "") == task and str(r["id"]) in again})
    return {"run_id": run["run_id"], "checkpoint": run["checkpoint"], "seed": seed,
            "tasks": tasks}


def out_of_fold_losses(store, ref: str, cfg: TrainConfig, folds: int = 3, seed: int = 0,
                       batch_size: int = 64, max_length: int = 512,
                       log: Log | None = None, retry: bool = True) -> OutOfFold:
    """Train `folds` LoRA runs (each on all folds but one) and score each held-out fold; with
    `retry`, a fold model that did not learn a task is trained once more (next seed)."""
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
        if log:
            log(f"fold {f + 1}/{folds}: training on {len(train)} rows")
        run, fold_losses = _train_and_score(store, cfg, path, name, held, batch_size, max_length)
        again = None
        if retry and (weak := unlearnt_tasks(held, fold_losses)):
            if log:
                log(f"fold {f + 1}/{folds}: did not learn {', '.join(sorted(weak))} (losses do "
                    f"not spread); training it once more with seed {cfg.seed + 1}")
            again = _retry(store, cfg, path, name, held, fold_losses, weak, batch_size,
                           max_length)
        losses.update(fold_losses)
        runs.append(FoldRun(fold=f, run_id=run["run_id"], checkpoint=run["checkpoint"],
                            n_train=len(train), n_scored=len(held),
                            losses=training_losses(run["run_dir"]), retry=again))
    return OutOfFold(losses=losses, folds=runs,
                     fold_of={i: fold_of[i] for i in losses})


def score_out_of_fold(store, ref: str, cfg: TrainConfig, folds: int = 3, seed: int = 0,
                      out: str | None = None, batch_size: int = 64, max_length: int = 512,
                      log: Log | None = None, retry: bool = True) -> dict:
    """`out_of_fold_losses`, stored as score `oof_loss` in a new version of `ref`."""
    got = out_of_fold_losses(store, ref, cfg, folds, seed, batch_size, max_length, log, retry)
    result = save_scores(store, ref, {OOF_SCORE: got.losses, OOF_FOLD_SCORE: got.fold_of},
                         {"scorer": OOF_SCORER, "model": cfg.base_model, "folds": folds,
                          "seed": seed, "max_steps": cfg.max_steps,
                          "learning_rate": cfg.learning_rate,
                          "runs": [r.run_id for r in got.folds],
                          "retries": {r.fold: r.retry for r in got.folds if r.retry}}, out)
    return {**result, "runs": [dataclasses.asdict(r) for r in got.folds]}
