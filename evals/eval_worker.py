"""Eval job entry: generate in a detached process that never opens the database.

    python -m evals.eval_worker RUN_DIR

Protocol (files in RUN_DIR, agreed with `kernel.jobs`):
    eval_request.json   written by `prepare(store, run_dir, ...)`: suite, checkpoints (ModelRefs),
                        backend + options, sampling, and the prompts still missing from the cache
    status.json         merged here (kernel.status.write_status): state, done, total, progress,
                        eta_s and `checkpoints` [{name, done, total}] (per-checkpoint progress)
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

from evals.backends import CacheOnly, backend_identity
from evals.generate import Item, cached_outputs, plan, run_backend, write_generations
from evals.types import ModelRef, SamplingConfig
from kernel.errors import StudioError
from kernel.status import write_status
from kernel.store import Store

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
               "checkpoint_ids": {m.name: c for m, c in zip(models, checkpoints, strict=True)},
               "sampling": s.sampling.to_dict(),
               "models": [dataclasses.asdict(m) for m in models],
               "items": [dataclasses.asdict(i) for i in items if i.cache_key not in have]}
    _write_json(run_dir / REQUEST, request)
    return request


CHUNKS_PER_CHECKPOINT = 10  # progress updates per checkpoint (each is one backend call)
MIN_CHUNK = 8               # prompts; smaller calls would cost the backend its batching


def chunks(items: list[Item]) -> list[tuple[str, list[Item]]]:
    """(checkpoint, items) pieces in generation order: each checkpoint's prompts in about
    CHUNKS_PER_CHECKPOINT slices (all samples of a prompt stay together), so the status can
    report progress while a checkpoint generates, not only after it."""
    out: list[tuple[str, list[Item]]] = []
    for name in dict.fromkeys(i.checkpoint for i in items):
        mine = [i for i in items if i.checkpoint == name]
        prompts = list(dict.fromkeys(i.prompt for i in mine))
        size = max(MIN_CHUNK, -(-len(prompts) // CHUNKS_PER_CHECKPOINT))
        for start in range(0, len(prompts), size):
            part = set(prompts[start:start + size])
            out.append((name, [i for i in mine if i.prompt in part]))
    return out


class Progress:
    """Writes done/total, per-checkpoint counts and an ETA into status.json as chunks finish."""

    def __init__(self, run_dir: Path, items: list[Item], ids: dict[str, str]):
        self.run_dir, self.total, self.done = run_dir, len(items), 0
        self.ids = ids
        self.per = {name: [0, 0] for name in dict.fromkeys(i.checkpoint for i in items)}
        for i in items:
            self.per[i.checkpoint][1] += 1
        self.t0 = time.monotonic()

    def rows(self) -> list[dict]:
        return [{"name": self.ids.get(n, n), "done": d, "total": t}
                for n, (d, t) in self.per.items()]

    def write(self, current: str | None = None, **fields) -> None:
        elapsed = time.monotonic() - self.t0
        eta = elapsed / self.done * (self.total - self.done) if self.done else None
        write_status(self.run_dir, done=self.done, total=self.total,
                     progress=self.done / max(1, self.total), eta_s=eta, checkpoints=self.rows(),
                     checkpoint=self.ids.get(current, current) if current else None, **fields)

    def advance(self, name: str, n: int) -> None:
        self.done += n
        self.per[name][0] += n
        self.write(name)
        done, total = self.per[name]
        print(f"[eval] {self.ids.get(name, name)}: {done} of {total} generations "
              f"({self.done} of {self.total} in all)", flush=True)


def run(run_dir: str | Path) -> int:
    """Generate everything the request lists; returns the number of generations written."""
    from evals.backends import get_backend

    run_dir = Path(run_dir)
    req = json.loads((run_dir / REQUEST).read_text())
    models = [ModelRef(**m) for m in req["models"]]
    items = [Item(**i) for i in req["items"]]
    sampling = SamplingConfig.from_dict(req["sampling"])
    tracker = Progress(run_dir, items, req.get("checkpoint_ids") or {})
    tracker.write(state="running")
    records: list[dict] = []
    if items:
        need = [m for m in models if any(i.checkpoint == m.name for i in items)]
        backend = get_backend(req["backend"], need, **req["backend_options"])
        try:
            for name, part in chunks(items):
                tracker.write(name)
                model = [m for m in need if m.name == name]
                got = run_backend(backend, model, part, sampling,
                                  batch_size=req["backend_options"].get("batch_size"))
                records += got
                tracker.advance(name, len(part))
        finally:
            backend.close()
    with (run_dir / OUTPUT).open("w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    write_status(run_dir, state="completed", done=len(items), progress=1.0, eta_s=0.0,
                 finished_at=time.time())  # done counts items, as the progress did
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
        sys.exit("usage: python -m evals.eval_worker RUN_DIR")
    sys.exit(main(sys.argv[1]))
