"""Loss-based noisy-label filtering: drop the rows a model finds surprisingly hard to fit.

Rows with wrong responses keep a high per-example response loss under a model fine-tuned on
the data (the clean majority is fitted first), so the high-loss mode of the loss distribution
is mostly label noise. The cut is chosen per group (task family, template, source) because
tasks differ in difficulty: one global cut keeps a hard task's wrong rows and drops an easy
task's clean ones. The split uses a 2-component Gaussian mixture on log-loss, as DivideMix does.

Score the rows first: `studio score REF --scorer oof-loss --model BASE` (the default: each row's
loss under LoRA runs that never saw it, `training.oof`), or `--scorer perplexity --model M`
(`resp_loss`, in-sample under a model tuned on this data; pass `--score resp_loss`); then
`studio denoise`.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def high_loss_cut(losses: Sequence[float], seed: int = 0,
                  posterior: float = HIGH_MODE_POSTERIOR) -> float:
    """The boundary between the low (clean) and high (noisy) modes of a 2-Gaussian mixture on
    log-loss: the first point between the two means where the high mode's posterior reaches
    `posterior`. (Taking the mixture's labels as they are would flag clean rows in the left
    tail whenever the high mode is the wider one.)"""
    from sklearn.mixture import GaussianMixture

    x = np.log(np.clip(np.asarray(losses, dtype=float), 1e-6, None)).reshape(-1, 1)
    gmm = GaussianMixture(n_components=2, random_state=seed).fit(x)
    means = gmm.means_.ravel()
    low, high = int(np.argmin(means)), int(np.argmax(means))
    grid = np.linspace(means[low], means[high], 513).reshape(-1, 1)
    past = np.nonzero(gmm.predict_proba(grid)[:, high] >= posterior)[0]
    if low == high or len(past) == 0:
        return float(np.exp(x.max()))
    return float(np.exp(grid[past[0], 0]))


def flag_high_loss(rows: Sequence[dict], seed: int = 0, min_group: int = 20,
                   group_key: str = "group", posterior: float = HIGH_MODE_POSTERIOR
                   ) -> tuple[list[str], dict[str, float]]:
    """Ids of rows (dicts with id, loss, and `group_key`) in their group's high-loss mode,
    and each group's cut. Groups smaller than `min_group` are too small to fit and kept."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(str(r.get(group_key) or ""), []).append(r)
    flagged: list[str] = []
    cuts: dict[str, float] = {}
    for name, members in sorted(groups.items()):
        if len(members) < min_group:
            continue
        cut = high_loss_cut([m["loss"] for m in members], seed, posterior)
        cuts[name] = cut
        flagged += [m["id"] for m in members if m["loss"] > cut]
    return flagged, cuts


_GROUPS = {"category", "source_file", "none"}


def row_losses(store: Store, ref: str, score: str = DENOISE_SCORE,
               group_by: str = "category") -> list[dict]:
    """[{id, group, loss}] for the rows of `ref` that have `score` (nearest scored version)."""
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
            f"SELECT r.id, {group_sql} AS grp, s.value FROM version_rows vr "
            "JOIN rows r ON r.uid = vr.uid "
            "JOIN scores s ON s.uid = vr.uid AND s.dataset = vr.dataset AND s.version = ? "
            "AND s.name = ? WHERE vr.dataset = ? AND vr.version = ? AND NOT vr.is_dup "
            "AND s.value IS NOT NULL ORDER BY r.id",
            [scored_in, score, dataset, version]).fetchall()
    return [{"id": i, "group": g, "loss": v} for i, g, v in got]


def drop_high_loss(store: Store, ref: str, score: str = DENOISE_SCORE, group_by: str = "category",
                   seed: int = 0, min_group: int = 20, out: str | None = None,
                   posterior: float = HIGH_MODE_POSTERIOR) -> dict:
    """A new version of `ref` without the rows in their group's high-loss mode."""
    if not 0.5 <= posterior < 1:
        raise StudioError(f"denoise: posterior must be in [0.5, 1), not {posterior}")
    rows = row_losses(store, ref, score, group_by)
    flagged, cuts = flag_high_loss(rows, seed=seed, min_group=min_group, posterior=posterior)
    if flagged:
        result = exclude(store, ref, flagged, out=out, operation="denoise",
                         params={"score": score, "group_by": group_by, "seed": seed,
                                 "min_group": min_group, "posterior": posterior, "cuts": cuts})
    else:
        dataset, version = resolve_ref(store, ref)
        result = {"ref": f"{dataset}@{version}", "parent": f"{dataset}@{version}", "n_excluded": 0}
    return {**result, "n_scored": len(rows), "cuts": cuts, "score": score, "group_by": group_by}
