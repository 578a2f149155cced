"""Entry point of every job process: `python -m kernel.job_runner RUN_DIR`.

It reads `RUN_DIR/job.json` ({"module": "training.train_worker", "device": "cpu"|"gpu"|null,
"lock_dir": ...}), waits for the device lock while in state "queued", then calls
`module.main(run_dir)` and records the outcome in status.json. Any worker module (training's,
evals') gets queueing, status, cancel and crash reporting from here for free.

Device policy: one job per GPU (`lock_dir/gpu-<i>.lock`, the job gets CUDA_VISIBLE_DEVICES=i);
on a machine without GPUs, one compute job per workspace at a time (`lock_dir/cpu.lock`),
because two jobs on the same few cores take as long in total and each finishes later.
The locks are `fcntl.flock`s, released by the kernel when the process dies, so a killed job
never leaves a stale lock.
"""

from __future__ import annotations

import fcntl
import importlib
import os
import signal
import sys
import time
import traceback
from pathlib import Path

from kernel.status import process_start, read_job, write_status

# job.json files written before the worker modules were renamed (a queued run resumed after an upgrade)
RENAMED_WORKERS = {"training.worker": "training.train_worker",
                   "evals.worker": "evals.eval_worker"}


class JobCancelled(BaseException):
    """Raised in the job by SIGTERM (from `kernel.jobs.cancel`)."""


def _on_sigterm(signum, frame):  # noqa: ARG001
    raise JobCancelled()


def _gpu_count() -> int:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip()])
    try:
        return len([d for d in os.listdir("/dev") if d.startswith("nvidia") and d[6:].isdigit()])
    except OSError:
        return 0


def acquire_device(run_dir: Path, job: dict, poll_s: float = 0.5):
    """Block (state queued) until a device lock is free; returns the open lock file or None."""
    device = job.get("device")
    if not device:
        return None
    lock_dir = Path(job.get("lock_dir") or run_dir.parent.parent / "locks")
    lock_dir.mkdir(parents=True, exist_ok=True)
    n_gpus = _gpu_count() if device == "gpu" else 0
    names = [f"gpu-{i}.lock" for i in range(n_gpus)] or ["cpu.lock"]
    visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    while True:
        for i, name in enumerate(names):
            fh = (lock_dir / name).open("a+")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                continue
            if name.startswith("gpu-"):
                os.environ["CUDA_VISIBLE_DEVICES"] = visible[i] if visible else str(i)
            return fh
        write_status(run_dir, state="queued", waiting_for=[str(lock_dir / n) for n in names])
        time.sleep(poll_s)


def run(run_dir: str | Path) -> int:
    run_dir = Path(run_dir).resolve()
    signal.signal(signal.SIGTERM, _on_sigterm)
    job = read_job(run_dir)
    write_status(run_dir, state="queued", pid=os.getpid(), pgid=os.getpgrp(),
                 pid_start=process_start(os.getpid()), error=None)
    try:
        lock = acquire_device(run_dir, job)
        write_status(run_dir, state="running", started_at=time.time(), waiting_for=None)
        print(f"[job] {job.get('module')} starting in {run_dir} (pid {os.getpid()})", flush=True)
        name = job.get("module") or "training.train_worker"
        module = importlib.import_module(RENAMED_WORKERS.get(name, name))
        module.main(str(run_dir))
    except JobCancelled:
        print("[job] cancelled (SIGTERM)", flush=True)
        write_status(run_dir, state="cancelled", finished_at=time.time(), error="cancelled by user")
        return 143
    except BaseException as exc:  # noqa: BLE001 - every failure must land in status.json
        traceback.print_exc()
        sys.stdout.flush()
        message = f"{type(exc).__name__}: {exc}".strip()
        write_status(run_dir, state="failed", finished_at=time.time(), error=message[:2000])
        return 1
    write_status(run_dir, state="completed", finished_at=time.time(), progress=1.0)
    print("[job] completed", flush=True)
    del lock
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m kernel.job_runner RUN_DIR")
    sys.exit(run(sys.argv[1]))
