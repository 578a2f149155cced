"""Decontamination: find training rows that share a long word n-gram with an eval set.

A row is contaminated when any of its token n-grams (default 8 tokens; a token is a word, or
one Han/kana character in Chinese/Japanese; a text shorter than that counts as one n-gram of
all its tokens) also occurs in a held-out/eval row. Vectorized over the
same shingle hashes as near-dup (`near_dedup.shingles`). `decontaminate` saves a version
without the contaminated rows and reports how many there were.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from curation import versions as V
from curation.datasets import load_rows, resolve_ref
from curation.near_dedup import row_text, shingles
from kernel.errors import StudioError
from kernel.store import Store


def contaminated(train: Sequence[dict | str], evals: Sequence[dict | str], ngram: int = 8,
                 field: str = "text") -> np.ndarray:
    """Boolean mask over `train`: True where a row shares an n-gram with any eval row."""
    if ngram < 1:
        raise StudioError("decontam: ngram must be >= 1")
    ev, _ = shingles([row_text(r, field) for r in evals], ngram)
    tr, off = shingles([row_text(r, field) for r in train], ngram)
    hit = np.isin(tr, ev)
    mask = np.zeros(len(train), dtype=bool)
    lengths = np.diff(off)
    nz = np.flatnonzero(lengths)
    if nz.size:
        mask[nz] = np.logical_or.reduceat(hit, off[:-1][nz])
    return mask


def decontaminate(store: Store, ref: str, against: str, ngram: int = 8, field: str = "text",
                  out: str | None = None) -> dict:
    """New version of `ref` without rows contaminated by `against` (a dataset ref; its
    held-out split when it has one, else all its rows)."""
    evals = load_rows(store, against, split="heldout") or load_rows(store, against)
    with store.connect() as con:
        dataset, version = resolve_ref(con, ref)
        got = con.execute(
            "SELECT vr.uid, r.id, r.messages, r.instruction, r.response, r.system "
            "FROM version_rows vr JOIN rows r ON r.uid = vr.uid WHERE vr.dataset = ? "
            "AND vr.version = ? AND vr.split = 'train' ORDER BY vr.rowid",
            [dataset, version]).fetchall()
    import json

    train = [{"messages": json.loads(m)} for _, _, m, *_ in got]
    if field != "text":
        cols = {"instruction": 3, "response": 4, "system": 5}
        if field not in cols:
            raise StudioError("decontam: field must be text, instruction, response or system")
        train = [{field: g[cols[field]]} for g in got]
    mask = contaminated(train, evals, ngram, field)
    bad = [got[k][0] for k in np.flatnonzero(mask)]
    bad_ids = [got[k][1] for k in np.flatnonzero(mask)]
    with store.transaction() as con:
        sql = V.parent_rows_sql() + " AND NOT list_contains(?, uid)"
        name = V.create_version(con, dataset, version, "decontam",
                                {"against": against, "ngram": ngram, "field": field,
                                 "n_flagged": len(bad), "ids": bad_ids[:100]},
                                sql, [dataset, version, bad], out)
    return {"ref": f"{dataset}@{name}", "parent": f"{dataset}@{version}", "against": against,
            "n_checked": len(got), "n_eval": len(evals), "n_flagged": len(bad),
            "flagged_ids": bad_ids[:20]}
