"""Loss-based noisy-label filtering: drop the rows a model finds surprisingly hard to fit.

Rows with wrong responses keep a high per-example response loss under a model fine-tuned on
the data (the clean majority is fitted first), so the high-loss mode of the loss distribution
is mostly label noise. The cut is chosen per group (task family, template, source) because
tasks differ in difficulty: one global cut keeps a hard task's wrong rows and drops an easy
task's clean ones. The split uses a 2-component Gaussian mixture on log-loss, as DivideMix does,
fitted per task and per scoring model (out-of-fold scores come from k models with k loss
scales), with extreme losses fenced out of the fit, and only where the losses spread at all
(a model that did not learn a task cannot tell its wrong answers: those rows are kept, and the
result says so in `unjudged`).

Score the rows first: `studio score REF --scorer oof-loss --model BASE` (the default: each row's
loss under LoRA runs that never saw it, `training.oof`), or `--scorer perplexity --model M`
(`resp_loss`, in-sample under a model tuned on this data; pass `--score resp_loss`); then
`studio denoise`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from curation import versions as V
from curation.datasets import resolve_ref
from curation.edits import exclude
from kernel.errors import StudioError
from kernel.store import Store

# Out-of-fold response loss (`training.oof`): the `studio score --scorer` name and the score it
# stores. It is the default score of `drop_high_loss` / `studio denoise` because it separated the
# demo's planted wrong labels best across seeds (bench/bench_noisy_labels.py, README).
OOF_SCORER = "oof-loss"
OOF_SCORE = "oof_loss"
DENOISE_SCORE = OOF_SCORE
# A row is flagged where its group's high-loss mode is this likely (posterior of the mixture):
# 0.9, not the Bayes 0.5, because dropping clean rows costs data while recall has room to spare
# (chosen on the demo's seed 0: out-of-fold k=3 precision 0.89 -> 0.93, recall 0.99 -> 0.98).
HIGH_MODE_POSTERIOR = 0.9
# Out-of-fold scores also store which fold model scored each row: the cut is fitted per model.
OOF_FOLD_SCORE = "oof_fold"
# Tukey's far-out fence (Q3 + 3 IQR on log-loss): beyond it a loss is extreme, never clean.
FAR_OUT_IQR = 3.0
# ... when they are a handful: more than this share of the group beyond the fence is a mode.
FAR_OUT_MAX_SHARE = 0.05
# A group is judged only if q80/q20 of its losses is at least this. Chosen on the demo's seed 0
# (groups whose model had not learned the task: 1.07-1.22, the early detector and the k=2 fold
# model that missed join_dash; every learned group: >= 1.63; 1.4 is the geometric middle).
# Seeds 1-2 agree (not learned 1.09-1.38, learned >= 1.49). It cannot tell "not learned" from
# "nearly clean": a group whose noisy share is under ~20% has a clean q80 and is left alone.
MIN_SPREAD = 1.4


def far_out_fence(losses: Sequence[float]) -> float:
    """Tukey's far-out fence on log-loss, Q3 + 3 IQR: losses beyond it are extreme whatever the
    mixture says. A handful of them (<= FAR_OUT_MAX_SHARE of the group) are flagged outright and
    left out of the fit, because they otherwise form a mixture component of their own and the
    cut lands beyond every other row."""
    x = np.log(np.clip(np.asarray(losses, dtype=float), 1e-6, None))
    q1, q3 = np.quantile(x, [0.25, 0.75])
    return float(np.exp(q3 + FAR_OUT_IQR * (q3 - q1)))


def loss_spread(losses: Sequence[float]) -> float:
    """q80 / q20 of a group's losses. A model that learned a task gives its clean rows a clearly
    lower loss than the wrong ones, so a group with a fair share of wrong answers spreads; one
    whose losses do not spread has no high-loss mode to cut (the model did not learn the task,
    or the group is nearly clean)."""
    q20, q80 = np.quantile(np.clip(np.asarray(losses, dtype=float), 1e-6, None), [0.2, 0.8])
    return float(q80 / q20)


def high_loss_cut(losses: Sequence[float], seed: int = 0,
                  posterior: float = HIGH_MODE_POSTERIOR, fence: bool = True,
                  past_high_mean: bool = True) -> float:
    """The boundary between the low (clean) and high (noisy) modes of a 2-Gaussian mixture on
    log-loss: the first point above the clean mean where the high mode's posterior reaches
    `posterior`. (Taking the mixture's labels as they are would flag clean rows in the left
    tail whenever the high mode is the wider one.) With `fence`, losses beyond the far-out
    fence are left out of the fit and the cut is never above the fence. `fence=False,
    past_high_mean=False` is the former cut (searched between the means only)."""
    from sklearn.mixture import GaussianMixture

    x = np.log(np.clip(np.asarray(losses, dtype=float), 1e-6, None))
    top = float(np.log(far_out_fence(losses))) if fence else float(x.max())
    if np.mean(x > top) > FAR_OUT_MAX_SHARE:   # that many beyond the fence are a mode, not a few
        top = float(x.max())                   # outliers (a group with < 25% noise: its Q3 is clean)
    bulk = x[x <= top].reshape(-1, 1)
    if len(bulk) < 2 or np.ptp(bulk) == 0:
        return float(np.exp(top))
    gmm = GaussianMixture(n_components=2, random_state=seed).fit(bulk)
    means = gmm.means_.ravel()
    low, high = int(np.argmin(means)), int(np.argmax(means))
    if low == high:
        return float(np.exp(top))
    # from the clean mean up to the fence: with two modes of similar width the high mode's
    # posterior may pass `posterior` only beyond its own mean
    if past_high_mean:
        grid = np.linspace(means[low], max(top, means[high]), 1025)
    else:                                      # the former cut's grid, exactly
        grid = np.linspace(means[low], means[high], 513)
    grid = grid.reshape(-1, 1)
    past = np.nonzero(gmm.predict_proba(grid)[:, high] >= posterior)[0]
    if len(past) == 0:
        return float(np.exp(top))
    return float(np.exp(min(grid[past[0], 0], top)))


@dataclass
class HighLoss:
    """What `flag_high_loss` decided: the flagged row ids, the cut of every group it judged,
    and the groups it refused to judge with the reason (shown to the user as a warning)."""

    flagged: list[str]
    cuts: dict[str, float]
    unjudged: dict[str, str] = field(default_factory=dict)


def group_name(row: dict, group_key: str = "group", per_model: bool = True) -> str:
    """A row's cut group: its task, and with out-of-fold scores the fold model that scored it
    (each model has its own loss scale: one that learned a task less well scores all of that
    task's rows higher, so pooling its rows with another model's mixes two scales)."""
    name = str(row.get(group_key) or "")
    fold = row.get("fold")
    return f"{name}/fold{int(fold)}" if per_model and fold is not None else name


def flag_high_loss(rows: Sequence[dict], seed: int = 0, min_group: int = 20,
                   group_key: str = "group", posterior: float = HIGH_MODE_POSTERIOR,
                   per_model: bool = True, fence: bool = True,
                   min_spread: float | None = MIN_SPREAD, past_high_mean: bool = True
                   ) -> HighLoss:
    """Rows (dicts with id, loss, `group_key` and, for out-of-fold scores, fold) in their
    group's high-loss mode. Groups smaller than `min_group` are too small to fit and kept;
    groups whose losses do not spread (`loss_spread` < `min_spread`) are kept and reported.
    `per_model=False, fence=False, min_spread=None, past_high_mean=False` is the former
    per-task mixture cut."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(group_name(r, group_key, per_model), []).append(r)
    out = HighLoss(flagged=[], cuts={})
    for name, members in sorted(groups.items()):
        if len(members) < min_group:
            continue
        losses = [m["loss"] for m in members]
        if min_spread is not None and (spread := loss_spread(losses)) < min_spread:
            out.unjudged[name] = (f"losses do not spread (q80/q20 {spread:.2f} < {min_spread}): "
                                  "the model did not learn this task, or it is nearly clean; "
                                  f"its {len(members)} rows are kept unjudged")
            continue
        cut = high_loss_cut(losses, seed, posterior, fence, past_high_mean)
        out.cuts[name] = cut
        out.flagged += [m["id"] for m in members if m["loss"] > cut]
    return out


_GROUPS = {"category", "source_file", "none"}


def row_losses(store: Store, ref: str, score: str = DENOISE_SCORE,
               group_by: str = "category") -> list[dict]:
    """[{id, group, loss, fold}] for the rows of `ref` that have `score` (nearest scored
    version); fold = the fold model that scored the row (out-of-fold scores), else None."""
    if group_by not in _GROUPS:
        raise StudioError(f"denoise: --group-by must be one of {sorted(_GROUPS)}, not {group_by!r}")
    group_sql = "NULL" if group_by == "none" else f"r.{group_by}"  # from the fixed set above
    with store.connect() as con:
        dataset, version = resolve_ref(con, ref)
        scored_in = V.known_scores(con, dataset, V.lineage(con, dataset, version)).get(score)
        if scored_in is None:
            scorer = OOF_SCORER if score == OOF_SCORE else "perplexity"
            raise StudioError(f"denoise: {dataset}@{version} has no score {score!r}; run "
                              f"`studio score {dataset}@{version} --scorer {scorer} --model M` first")
        got = con.execute(
            f"SELECT r.id, {group_sql} AS grp, s.value, f.value FROM version_rows vr "
            "JOIN rows r ON r.uid = vr.uid "
            "JOIN scores s ON s.uid = vr.uid AND s.dataset = vr.dataset AND s.version = ? "
            "AND s.name = ? "
            "LEFT JOIN scores f ON f.uid = vr.uid AND f.dataset = vr.dataset AND f.version = ? "
            "AND f.name = ? AND s.name = ? "
            "WHERE vr.dataset = ? AND vr.version = ? AND NOT vr.is_dup "
            "AND s.value IS NOT NULL ORDER BY r.id",
            [scored_in, score, scored_in, OOF_FOLD_SCORE, OOF_SCORE, dataset, version]).fetchall()
    return [{"id": i, "group": g, "loss": v, "fold": None if f is None else int(f)}
            for i, g, v, f in got]


def drop_high_loss(store: Store, ref: str, score: str = DENOISE_SCORE, group_by: str = "category",
                   seed: int = 0, min_group: int = 20, out: str | None = None,
                   posterior: float = HIGH_MODE_POSTERIOR,
                   min_spread: float | None = MIN_SPREAD) -> dict:
    """A new version of `ref` without the rows in their group's high-loss mode (groups whose
    losses do not spread are kept and listed in `unjudged`; `min_spread=None` judges all)."""
    if not 0.5 <= posterior < 1:
        raise StudioError(f"denoise: posterior must be in [0.5, 1), not {posterior}")
    rows = row_losses(store, ref, score, group_by)
    got = flag_high_loss(rows, seed=seed, min_group=min_group, posterior=posterior,
                         min_spread=min_spread)
    if got.flagged:
        result = exclude(store, ref, got.flagged, out=out, operation="denoise",
                         params={"score": score, "group_by": group_by, "seed": seed,
                                 "min_group": min_group, "posterior": posterior,
                                 "min_spread": min_spread, "cuts": got.cuts,
                                 "unjudged": got.unjudged})
    else:
        dataset, version = resolve_ref(store, ref)
        result = {"ref": f"{dataset}@{version}", "parent": f"{dataset}@{version}", "n_excluded": 0}
    return {**result, "n_scored": len(rows), "cuts": got.cuts, "unjudged": got.unjudged,
            "score": score, "group_by": group_by}
