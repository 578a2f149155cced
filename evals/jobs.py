"""Eval jobs: launch one (a durable `kernel.jobs` job running `evals.eval_worker`) and store the
results of finished ones. The CLI's `studio eval --detach` and the Evaluate page share these."""

from __future__ import annotations

import threading
from pathlib import Path

from evals import eval_worker
from kernel import jobs
from kernel.errors import StudioError
from kernel.store import Store

_INGEST_LOCK = threading.Lock()  # two UI sessions in one server must not store a job twice


def launch_eval(store: Store, suite: str, checkpoints: list[str], backend: str = "hf",
                backend_options: dict | None = None, name: str | None = None) -> str:
    """Start a detached eval job for `suite` x `checkpoints`; returns its run id."""
    checkpoints = list(checkpoints)
    if not checkpoints:
        raise StudioError("evaluate: pick at least one checkpoint")

    def prepare(run_dir: Path) -> None:
        eval_worker.prepare(store, run_dir, suite, checkpoints, backend=backend,
                       backend_options=backend_options)

    return jobs.launch(store, "eval", "evals.eval_worker",
                       config={"suite": suite, "checkpoints": checkpoints, "backend": backend},
                       prepare=prepare,
                       name=name or f"eval {suite} ({len(checkpoints)} models)")


def ingest_finished(store: Store, runs: list[dict]) -> list[str]:
    """Store the results of completed eval jobs not ingested yet; returns their ids."""
    todo = [r for r in runs if r.get("kind") == "eval" and r["state"] == "completed"
            and not eval_worker.is_ingested(r["run_dir"])]
    done: list[str] = []
    if not todo:
        return done
    with _INGEST_LOCK:
        for run in todo:
            if eval_worker.is_ingested(run["run_dir"]):  # another session got there first
                continue
            eval_worker.ingest(store, run["run_dir"])
            done.append(run["id"])
    return done
