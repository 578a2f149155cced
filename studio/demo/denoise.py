"""The demo's noisy-label step: score every row with one detector, drop each task's high-loss
mode, and measure the detector against the planted wrong labels.

Detectors (all give a per-row response loss; `curation.noisy_labels` picks the cut):
- `oof` (default): out-of-fold loss from k LoRA runs that never saw the row (`training.oof`);
- `in-sample`: loss under the run trained on the raw data (the demo's former method);
- `early`: loss under that run's early checkpoint (the small-loss criterion: early in training
  a network fits the clean majority before it memorises the wrong rows).
`bench/bench_noisy_labels.py` compares them on seeds 0-2; the README has its figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from curation.noisy_labels import (
    HIGH_MODE_POSTERIOR,
    OOF_SCORE,
    drop_high_loss,
    flag_high_loss,
    group_name,
    row_losses,
)
from curation.scoring import score
from kernel.store import Store
from training.config import TrainConfig
from training.merge import merge_checkpoint
from training.oof import score_out_of_fold

DETECTORS = ("oof", "in-sample", "early")


@dataclass(frozen=True)
class DetectorQuality:
    """How one detector's flags match the planted wrong/empty/truncated answers it scored."""

    method: str
    auroc: float | None
    precision: float | None   # flagged rows that are planted bad labels
    recall: float | None      # planted bad labels (among the scored rows) that were flagged
    n_scored: int
    n_bad: int
    n_flagged: int
    unjudged: list[str] = field(default_factory=list)  # groups left alone (losses do not spread)
    n_unjudged: int = 0                               # rows in them
    recall_judged: float | None = None                # recall among the judged groups' rows


# The cut as it was before the per-model cut (one mixture per task, no fence, every task
# judged): `bench/bench_noisy_labels.py` prints it beside the current one.
PER_TASK_CUT = {"per_model": False, "fence": False, "min_spread": None, "past_high_mean": False}


def quality(method: str, rows: list[dict], bad_ids: set[str], seed: int,
            posterior: float = HIGH_MODE_POSTERIOR, **cut) -> DetectorQuality:
    """AUROC of the loss and precision/recall of the cut (`flag_high_loss` with `cut`'s
    options), vs ground truth. Recall counts every planted bad label scored, judged or not."""
    got = flag_high_loss(rows, seed=seed, posterior=posterior, **cut)
    flagged = set(got.flagged)
    bad = np.array([r["id"] in bad_ids for r in rows])
    losses = np.array([r["loss"] for r in rows])
    auroc = float(roc_auc_score(bad, losses)) if 0 < bad.sum() < len(bad) else None
    hits = len(flagged & bad_ids)
    n_bad = int(bad.sum())
    unjudged = {r["id"] for r in rows if group_name(r) in got.unjudged}
    bad_judged = n_bad - len(unjudged & bad_ids)
    return DetectorQuality(method=method, auroc=auroc,
                           precision=hits / len(flagged) if flagged else None,
                           recall=hits / n_bad if n_bad else None,
                           n_scored=len(rows), n_bad=n_bad, n_flagged=len(flagged),
                           unjudged=sorted(got.unjudged), n_unjudged=len(unjudged),
                           recall_judged=hits / bad_judged if bad_judged else None)


def merged_model(store: Store, checkpoint: str) -> Path:
    """The checkpoint merged into plain weights under models/ (reused when already there)."""
    out = store.workspace.models_dir / ("merged-" + checkpoint.replace("/", "-"))
    if not (out / "config.json").exists():
        merge_checkpoint(store, checkpoint, out)
    return out


def score_rows(store: Store, ref: str, method: str, *, raw_checkpoint: str | None = None,
               early_checkpoint: str | None = None, train_cfg: TrainConfig | None = None,
               folds: int = 3, seed: int = 0, log=None) -> tuple[str, str, dict]:
    """Score `ref` with one detector -> (scored version, score name, details)."""
    if method == "oof":
        got = score_out_of_fold(store, ref, train_cfg, folds=folds, seed=seed, max_length=128,
                                log=log)
        return got["ref"], OOF_SCORE, {"folds": folds, "runs": got["runs"]}
    checkpoint = raw_checkpoint if method == "in-sample" else early_checkpoint
    if checkpoint is None:
        raise ValueError(f"detector {method!r} needs its checkpoint")
    got = score(store, ref, "perplexity", model=str(merged_model(store, checkpoint)),
                batch_size=64, max_length=128)
    return got["ref"], "resp_loss", {"checkpoint": checkpoint}


def denoise(store: Store, scored_ref: str, score_name: str, seed: int) -> dict:
    """Drop each task's high-loss mode: the curated version (`drop_high_loss`'s result)."""
    return drop_high_loss(store, scored_ref, score=score_name, group_by="category", seed=seed)


def losses_of(store: Store, scored_ref: str, score_name: str) -> list[dict]:
    return row_losses(store, scored_ref, score=score_name)
