"""Stored eval results, read without generating: what was evaluated, and the latest scores.

The Evaluate and Compare pages list these; comparisons themselves go through
`evals.compare.compare` with a cache-only backend, so a page view never loads a model.
"""

from __future__ import annotations

import json

from curation.store import Store


def evaluated_checkpoints(store: Store, suite: str) -> list[str]:
    """Checkpoints whose outputs on `suite` are stored: base models first, then by first eval."""
    return [r["checkpoint"] for r in store.query(
        "SELECT checkpoint, min(created_at) AS t FROM eval_runs WHERE suite = ? "
        "GROUP BY checkpoint ORDER BY (checkpoint NOT LIKE 'base:%'), t, checkpoint", [suite])]


def generation_count(store: Store) -> int:
    """Changes whenever new generations land: a key for memoizing comparisons."""
    return int(store.query("SELECT count(*) AS n FROM generations")[0]["n"])


def latest_results(store: Store) -> list[dict]:
    """The newest stored result per (suite, checkpoint), newest first; `summary` is
    metric -> mean as stored by the eval run."""
    rows = store.query("SELECT suite, checkpoint, backend, n_generated, n_cached, summary, "
                       "created_at FROM eval_runs ORDER BY created_at DESC")
    latest: dict[tuple[str, str], dict] = {}
    for r in rows:
        if (r["suite"], r["checkpoint"]) not in latest:
            latest[(r["suite"], r["checkpoint"])] = {**r, "summary": json.loads(r["summary"] or "{}")}
    return list(latest.values())
