"""Stored eval results, read without generating: what was evaluated, and the latest scores.

The Evaluate and Compare pages list these; comparisons themselves go through
`evals.compare.compare` with a cache-only backend, so a page view never loads a model.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np

from evals.suites import Suite, load_suite
from kernel.errors import StudioError
from kernel.store import Store


def evaluated_checkpoints(store: Store, suite: str) -> list[str]:
    """Checkpoints whose outputs on `suite` are stored: base models first, then by first eval."""
    return [r["checkpoint"] for r in store.query(
        "SELECT checkpoint, min(created_at) AS t FROM eval_runs WHERE suite = ? "
        "GROUP BY checkpoint ORDER BY (checkpoint NOT LIKE 'base:%'), t, checkpoint", [suite])]


def evaluated_by_suite(store: Store) -> dict[str, list[str]]:
    """`evaluated_checkpoints` of every suite with one query: suite -> checkpoints."""
    out: dict[str, list[str]] = {}
    for r in store.query(
            "SELECT suite, checkpoint, min(created_at) AS t FROM eval_runs GROUP BY suite, "
            "checkpoint ORDER BY suite, (checkpoint NOT LIKE 'base:%'), t, checkpoint"):
        out.setdefault(r["suite"], []).append(r["checkpoint"])
    return out


def results_stamp(store: Store) -> tuple:
    """Changes whenever stored per-example results change (an evaluation replaces a
    checkpoint's scores): a key for memoizing what is computed from them."""
    r = store.query("SELECT count(*) AS n, max(created_at) AS t FROM eval_scores")[0]
    return int(r["n"]), str(r["t"])


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


@dataclass
class StoredResults:
    """Per-example results of some checkpoints on one suite, as the last evaluation stored them:
    what the Compare page needs, read without a tokenizer, a model or re-scoring."""

    suite: Suite
    # checkpoint -> metric spec -> per-row score (mean over samples), in suite row order
    scores: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    outputs: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # ckpt -> row -> samples
    backends: dict[str, dict | None] = field(default_factory=dict)   # ckpt -> backend identity
    fingerprints: dict[str, str] = field(default_factory=dict)       # ckpt -> content hash


def stored_results(store: Store, suite: str | Suite, checkpoints: list[str]) -> StoredResults:
    """Stored scores and outputs of `checkpoints` on `suite` with one query (plus the suite).

    Raises StudioError naming the checkpoint when its stored results do not cover every row and
    metric of the suite (evaluate it first). A checkpoint's fingerprint hashes its cache keys
    and scores, so anything computed from them can be cached under it.
    """
    suite = load_suite(store, suite) if isinstance(suite, str) else suite
    wanted = list(dict.fromkeys(checkpoints))
    with store.read() as con:
        got = con.execute(
            "SELECT s.checkpoint, s.row_id, s.sample_idx, s.metric, s.value, s.cache_key, "
            "g.output, g.backend_config FROM eval_scores s "
            "LEFT JOIN generations g ON g.cache_key = s.cache_key "
            "WHERE s.suite = ? AND s.checkpoint IN (SELECT unnest(?)) "
            "ORDER BY s.checkpoint, s.row_id, s.metric, s.sample_idx",
            [suite.name, wanted]).fetchall()
    index = {r["id"]: i for i, r in enumerate(suite.rows)}
    out = StoredResults(suite)
    sums: dict[str, dict[str, np.ndarray]] = {}
    counts: dict[str, dict[str, np.ndarray]] = {}
    hashes: dict = {}
    for ckpt, row_id, sample, metric, value, key, output, backend in got:
        i = index.get(row_id)
        if i is None or metric not in suite.metrics:
            continue                      # a row or metric the frozen suite no longer has
        s = sums.setdefault(ckpt, {m: np.zeros(len(suite.rows)) for m in suite.metrics})
        c = counts.setdefault(ckpt, {m: np.zeros(len(suite.rows)) for m in suite.metrics})
        s[metric][i] += value
        c[metric][i] += 1
        samples = out.outputs.setdefault(ckpt, {}).setdefault(row_id, [])
        if metric == suite.metrics[0]:
            samples.append(output if output is not None else "")
        if backend is not None:
            out.backends[ckpt] = json.loads(backend)
        hashes.setdefault(ckpt, hashlib.sha256()).update(
            f"{row_id}\x1f{sample}\x1f{metric}\x1f{value!r}\x1f{key}\x1e".encode())
    for ckpt in wanted:
        missing = [m for m in suite.metrics if ckpt not in counts or not counts[ckpt][m].all()]
        if missing:
            raise StudioError(f"suite {suite.name}: no stored results of {ckpt} for every row "
                              f"and metric ({', '.join(missing)}); evaluate it first")
        out.scores[ckpt] = {m: sums[ckpt][m] / counts[ckpt][m] for m in suite.metrics}
        out.backends.setdefault(ckpt, None)
        out.fingerprints[ckpt] = hashes[ckpt].hexdigest()
    return out
