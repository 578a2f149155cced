"""Contamination check: held-out rows that near-duplicate the training rows of a checkpoint's run.

Reuses curation's MinHash/LSH (`curation.near_dedup`) on the instruction + response text; a
flagged row is reported (not dropped) so the user can judge the scores it affects.
"""

from __future__ import annotations

import json

from evals.prompts import prompt_messages, reference
from evals.types import ModelRef
from kernel.store import Store


def row_text(row: dict) -> str:
    turns = " ".join(m["content"] for m in prompt_messages(row) if m.get("role") != "system")
    return f"{turns} {reference(row) or ''}".strip()


def find_contamination(heldout: list[dict], train: list[dict], threshold: float = 0.8,
                       ngram: int = 3) -> list[dict]:
    """Held-out rows whose estimated Jaccard with some training row is >= threshold."""
    from curation.near_dedup import MinHashConfig, candidate_pairs, pair_similarity, signatures

    if not heldout or not train:
        return []
    cfg = MinHashConfig(threshold=threshold, ngram=ngram)
    texts = [row_text(r) for r in heldout] + [row_text(r) for r in train]
    sig = signatures(texts, cfg)
    bands, rows = cfg.band_layout()
    pairs = candidate_pairs(sig, bands, rows)
    n_h = len(heldout)
    cross = pairs[(pairs[:, 0] < n_h) & (pairs[:, 1] >= n_h)]
    if len(cross) == 0:
        return []
    sims = pair_similarity(sig, sig, cross)
    best: dict[int, tuple[float, int]] = {}
    for (i, j), s in zip(cross.tolist(), sims.tolist(), strict=True):
        if s >= threshold and s > best.get(i, (-1.0, 0))[0]:
            best[i] = (s, j - n_h)
    return [{"row_id": heldout[i]["id"], "train_id": train[j].get("id"),
             "similarity": round(float(s), 3)} for i, (s, j) in sorted(best.items())]


def training_dataset(store: Store, model: ModelRef) -> str | None:
    """The dataset ref the checkpoint's run trained on (from the run's config), if known."""
    if not model.adapter_path or "/" not in model.name:
        return None
    run_id = model.name.split("/", 1)[0]
    rows = store.query("SELECT config FROM runs WHERE id = ?", [run_id])
    if not rows:
        return None
    config = rows[0]["config"]
    config = json.loads(config) if isinstance(config, str) else (config or {})
    return config.get("dataset") or None


def check_models(store: Store, suite, models: list[ModelRef], threshold: float = 0.8) -> dict:
    """checkpoint -> flagged held-out rows (only checkpoints whose training data is known)."""
    from curation.datasets import load_rows

    out: dict[str, list[dict]] = {}
    for m in models:
        ref = training_dataset(store, m)
        if ref:
            out[m.name] = find_contamination(suite.rows, load_rows(store, ref, split="train"),
                                             threshold)
    return out

