"""Seeded train/held-out split, optionally stratified by a field; a new version.

Rows are ranked by a hash of (seed, uid), so the same seed always gives the same split and
adding rows elsewhere does not reshuffle existing ones. With `stratify`, each group (e.g.
`category`) gives the same fraction. Rows flagged as duplicates stay in train (they are
skipped anyway) so held-out rows are unique; evals read `load_rows(ref, split="heldout")`.
"""

from __future__ import annotations

from curation import versions as V
from curation.datasets import resolve_ref
from kernel.errors import StudioError
from kernel.store import Store

STRATIFY_FIELDS = {"category": "r.category", "source": "r.source_file", "n_turns": "r.n_turns"}


def split(store: Store, ref: str, held_out: float, seed: int = 0, stratify: str | None = None,
          out: str | None = None) -> dict:
    """New version with `held_out` (0 < f < 1) of the unique rows marked 'heldout'."""
    if not 0.0 < held_out < 1.0:
        raise StudioError(f"split: --held-out must be a fraction between 0 and 1, got {held_out}")
    if stratify is not None and stratify not in STRATIFY_FIELDS:
        raise StudioError(f"split: cannot stratify by {stratify!r}; use one of "
                          f"{', '.join(sorted(STRATIFY_FIELDS))}")
    group = STRATIFY_FIELDS[stratify] if stratify else "NULL"
    with store.transaction() as con:
        dataset, version = resolve_ref(con, ref)
        sql = f"""
            SELECT uid, CASE WHEN NOT is_dup AND rk <= round(n * ?) THEN 'heldout' ELSE 'train'
                        END AS split, dup_cluster, is_dup
            FROM (SELECT vr.uid, vr.dup_cluster, vr.is_dup,
                         row_number() OVER (PARTITION BY vr.is_dup, {group}
                                            ORDER BY md5(CAST(? AS VARCHAR) || ':' || vr.uid)) AS rk,
                         count(*) OVER (PARTITION BY vr.is_dup, {group}) AS n
                  FROM version_rows vr JOIN rows r ON r.uid = vr.uid
                  WHERE vr.dataset = ? AND vr.version = ?)"""
        name = V.create_version(con, dataset, version, "split",
                                {"held_out": held_out, "seed": seed, "stratify": stratify},
                                sql, [held_out, seed, dataset, version], out)
        n_train, n_held = con.execute(
            "SELECT count(*) FILTER (WHERE split = 'train' AND NOT is_dup), "
            "count(*) FILTER (WHERE split = 'heldout') FROM version_rows "
            "WHERE dataset = ? AND version = ?", [dataset, name]).fetchone()
    return {"ref": f"{dataset}@{name}", "parent": f"{dataset}@{version}", "n_train": n_train,
            "n_heldout": n_held}
