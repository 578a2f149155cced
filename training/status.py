"""The files a job writes in its run folder, and how to read them at any time.

Why files: workers never open the database (DuckDB allows one process per file). A job's truth
while it runs is `status.json` (replaced atomically), `metrics.jsonl` (append-only, one line per
log event) and `log.txt` (stdout/stderr). `training.jobs.refresh` ingests them into the store.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

STATUS_FILE = "status.json"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "log.txt"
JOB_FILE = "job.json"
CHECKPOINTS_DIR = "checkpoints"   # checkpoints/step-<N>/: adapter + tokenizer + meta.json
META_FILE = "meta.json"
STATES = ("queued", "running", "completed", "failed", "cancelled")
TERMINAL = ("completed", "failed", "cancelled")
JOB_STATES = STATES  # the public name of the vocabulary (front ends import it)


def read_status(run_dir: str | Path) -> dict:
    """The last status the job wrote ({} before it wrote any)."""
    path = Path(run_dir) / STATUS_FILE
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def write_status(run_dir: str | Path, **fields) -> dict:
    """Merge `fields` into status.json atomically (write a temp file, then rename)."""
    run_dir = Path(run_dir)
    status = read_status(run_dir)
    status.update(fields)
    status["updated_at"] = time.time()
    tmp = run_dir / f".{STATUS_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(status, default=str))
    os.replace(tmp, run_dir / STATUS_FILE)
    return status


def append_metrics(run_dir: str | Path, record: dict) -> None:
    with (Path(run_dir) / METRICS_FILE).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, default=float) + "\n")
        fh.flush()


def read_metrics(run_dir: str | Path, since: int = 0) -> list[dict]:
    """Metric lines from line `since` on (a half-written last line is skipped, not an error)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    out = []
    with path.open(encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if i < since:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return out


def log_tail(run_dir: str | Path, n_lines: int = 30) -> str:
    """The last `n_lines` of log.txt (cheap on big logs: reads only the end of the file)."""
    path = Path(run_dir) / LOG_FILE
    if not path.exists():
        return ""
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 64 * 1024))
        data = fh.read().decode("utf-8", errors="replace")
    return "\n".join(data.splitlines()[-n_lines:])


def read_job(run_dir: str | Path) -> dict:
    path = Path(run_dir) / JOB_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def write_job(run_dir: str | Path, job: dict) -> None:
    (Path(run_dir) / JOB_FILE).write_text(json.dumps(job, indent=2, default=str))


def process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22), or None
    where /proc is missing. With the pid it identifies a process even after the pid is reused."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def adapter_hash(folder: str | Path) -> str | None:
    """Content hash of a LoRA adapter (config + weights), or None where there is no adapter.
    The one identity of an adapter: checkpoints record it and the generation cache keys on it."""
    folder = Path(folder)
    if not (folder / ADAPTER_FILES[0]).exists():
        return None
    h = hashlib.sha256()
    for name in ADAPTER_FILES:
        path = folder / name
        if path.exists():
            h.update(name.encode())
            with path.open("rb") as fh:
                for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()
