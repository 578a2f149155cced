"""The Evaluate and Compare pages' glue to the evals library.

Policy the UI adds: the server process never generates. Evaluations run as durable jobs
(`training.jobs.launch` + `evals.worker`), and comparisons read the generation cache only
(a backend that refuses to generate), so a page view never loads a model.
"""

from __future__ import annotations

import threading
from pathlib import Path

from curation.errors import StudioError
from curation.store import Store
from evals.backends import CacheOnly
from studio.ui.context import lib_first

SUITES = (("evals.suites", "list_suites"),)
COMPARE = (("evals.compare", "compare"),)
_INGEST_LOCK = threading.Lock()  # two sessions must not store the same job twice


def get(candidates):
    return lib_first(*candidates)


def page_backend() -> CacheOnly:
    """Page views read cached outputs only, never load a model."""
    return CacheOnly("evaluate it on the Evaluate page first")


def checkpoint_ids(s: Store) -> list[str]:
    """Base models first, then run checkpoints by step (the order a user compares them in)."""
    return [r["id"] for r in s.query(
        "SELECT id FROM checkpoints ORDER BY (run_id IS NOT NULL), run_id, step, id")]


def evaluated_checkpoints(s: Store, suite: str) -> list[str]:
    """Checkpoints whose outputs on `suite` are stored (comparable without generating)."""
    return [r["checkpoint"] for r in s.query(
        "SELECT checkpoint, min(created_at) AS t FROM eval_runs WHERE suite = ? "
        "GROUP BY checkpoint ORDER BY (checkpoint NOT LIKE 'base:%'), t, checkpoint", [suite])]


def cache_version(s: Store) -> int:
    """Changes whenever new generations land: the key for memoizing comparisons."""
    return int(s.query("SELECT count(*) AS n FROM generations")[0]["n"])


def launch_eval(s: Store, suite: str, checkpoints: list[str], backend: str = "hf",
                backend_options: dict | None = None) -> str:
    """Start a detached eval job for `suite` x `checkpoints`; returns its run id."""
    from evals import worker
    from training import jobs

    if not checkpoints:
        raise StudioError("evaluate: pick at least one checkpoint")

    def prepare(run_dir: Path) -> None:
        worker.prepare(s, run_dir, suite, checkpoints, backend=backend,
                       backend_options=backend_options)

    return jobs.launch(s, "eval", "evals.worker",
                       config={"suite": suite, "checkpoints": checkpoints, "backend": backend},
                       prepare=prepare, name=f"eval {suite} ({len(checkpoints)} models)")


def ingest_finished(s: Store, runs: list[dict]) -> list[str]:
    """Store the results of completed eval jobs not ingested yet; returns their ids."""
    from evals import worker

    done = []
    todo = [r for r in runs if r.get("kind") == "eval" and r["state"] == "completed"
            and not worker.is_ingested(r["run_dir"])]
    if not todo:
        return done
    with _INGEST_LOCK:
        for run in todo:
            if worker.is_ingested(run["run_dir"]):  # another session got there first
                continue
            worker.ingest(s, run["run_dir"])
            done.append(run["id"])
    return done
