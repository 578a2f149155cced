"""Eval job entry: generate in a detached process that never opens the database.

    python -m evals.worker RUN_DIR

Protocol (files in RUN_DIR, agreed with `training.jobs`):
    eval_request.json   written by `prepare(store, run_dir, ...)`: suite, checkpoints (ModelRefs),
                        backend + options, sampling, and the prompts still missing from the cache
    status.json         merged here (training.status.write_status): state, done, total, progress
    generations.jsonl   written here: one generation record per line (the `generations` columns)
Then `ingest(store, run_dir)` stores the generations and scores the suite from the cache.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
import traceback
from pathlib import Path

from curation.errors import StudioError
from curation.store import Store
from evals.backends import CacheOnly, backend_identity
from evals.generate import Item, cached_outputs, plan, run_backend, write_generations
from evals.types import ModelRef, SamplingConfig
from training.status import write_status

REQUEST = "eval_request.json"
STATUS = "status.json"
OUTPUT = "generations.jsonl"


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def prepare(store: Store, run_dir: str | Path, suite: str, checkpoints: list[str],
            backend: str = "hf", backend_options: dict | None = None) -> dict:
    """Write the request for the worker: only cache misses are listed. Returns the request."""
    from evals.suites import load_suite
    from training.checkpoints import resolve as resolve_model

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    s = load_suite(store, suite)
    models = [resolve_model(store, c) for c in checkpoints]
    identity = backend_identity(backend, backend_options)
    items = plan(models, s.rows, s.sampling, identity)
    have = cached_outputs(store, [i.cache_key for i in items])
    request = {"suite": s.name, "backend": backend, "backend_options": backend_options or {},
               "identity": identity,
               "sampling": s.sampling.to_dict(),
               "models": [dataclasses.asdict(m) for m in models],
               "items": [dataclasses.asdict(i) for i in items if i.cache_key not in have]}
    _write_json(run_dir / REQUEST, request)
    return request


def run(run_dir: str | Path) -> int:
    """Generate everything the request lists; returns the number of generations written."""
    from evals.backends import get_backend

    run_dir = Path(run_dir)
    req = json.loads((run_dir / REQUEST).read_text())
    models = [ModelRef(**m) for m in req["models"]]
    items = [Item(**i) for i in req["items"]]
    sampling = SamplingConfig.from_dict(req["sampling"])
    write_status(run_dir, state="running", done=0, total=len(items), progress=0.0)
    records: list[dict] = []
    if items:
        need = [m for m in models if any(i.checkpoint == m.name for i in items)]
        backend = get_backend(req["backend"], need, **req["backend_options"])

        def progress(checkpoint: str, n_done: int) -> None:
            write_status(run_dir, done=n_done, checkpoint=checkpoint,
                         progress=n_done / max(1, len(items)))

        try:
            records = run_backend(backend, need, items, sampling,
                                  batch_size=req["backend_options"].get("batch_size"),
                                  progress=progress)
        finally:
            backend.close()
    with (run_dir / OUTPUT).open("w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    write_status(run_dir, state="completed", done=len(records), progress=1.0,
                 finished_at=time.time())
    return len(records)


INGESTED = "ingested.json"  # written by ingest once the results are in the store


def ingest(store: Store, run_dir: str | Path):
    """Store the worker's generations (one transaction) and score the suite from the cache."""
    from evals.evaluate import evaluate

    run_dir = Path(run_dir)
    req_path, out_path = run_dir / REQUEST, run_dir / OUTPUT
    if not req_path.exists():
        raise StudioError(f"{req_path}: no eval request in this run folder")
    if not out_path.exists():
        raise StudioError(f"{out_path}: the eval job has not finished (no generations file)")
    req = json.loads(req_path.read_text())
    records = []
    for lineno, line in enumerate(out_path.read_text().splitlines(), 1):
        try:
            records.append(json.loads(line))
        except ValueError as exc:
            raise StudioError(f"{out_path}:{lineno}: invalid JSON ({exc.msg})") from exc
    with store.transaction() as con:
        write_generations(con, records)
    result = evaluate(store, req["suite"], [ModelRef(**m) for m in req["models"]],
                      backend=CacheOnly("they are neither cached nor in the run folder; "
                                        "run the eval job again", stands_for=req["identity"]))
    (run_dir / INGESTED).write_text(json.dumps({"suite": req["suite"], "at": time.time()}))
    return result


def is_ingested(run_dir: str | Path) -> bool:
    """Whether `ingest` already stored this job's results (by any process: UI or CLI)."""
    return (Path(run_dir) / INGESTED).exists()


def main(run_dir: str | Path) -> int:
    try:
        run(run_dir)
    except BaseException as exc:
        write_status(run_dir, state="failed", error=str(exc), traceback=traceback.format_exc())
        raise
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m evals.worker RUN_DIR")
    sys.exit(main(sys.argv[1]))
