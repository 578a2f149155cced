"""The files a job writes in its run folder, and how to read them at any time.

Why files: workers never open the database (DuckDB allows one process per file). A job's truth
while it runs is `status.json` (replaced atomically), `metrics.jsonl` (append-only, one line per
log event) and `log.txt` (stdout/stderr). `kernel.jobs.refresh` ingests them into the store.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from kernel.processes import process_start  # noqa: F401  (re-exported: job files record it)

STATUS_FILE = "status.json"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "log.txt"
JOB_FILE = "job.json"
CHECKPOINTS_DIR = "checkpoints"   # checkpoints/step-<N>/: adapter + tokenizer + meta.json
META_FILE = "meta.json"
JOB_STATES = ("queued", "running", "completed", "failed", "cancelled")
STATES = JOB_STATES  # older name
TERMINAL = ("completed", "failed", "cancelled")
ACTIVE = tuple(s for s in JOB_STATES if s not in TERMINAL)  # queued or running
STATUS_ERROR = "status_error"  # key read_status sets when the file cannot be trusted
# Progress fields: train jobs write step/max_steps/eta_s, eval jobs done/total/eta_s and
# `checkpoints` [{name, done, total}] (per-checkpoint generations); all have progress (0..1).
_NUMERIC = ("progress", "step", "max_steps", "eta_s", "done", "total", "started_at", "finished_at",
            "updated_at", "pid", "pgid", "pid_start")


def read_status(run_dir: str | Path) -> dict:
    """The last status the job wrote ({} before it wrote any).

    Never raises: a run whose folder was deleted, or whose status.json is a directory, binary,
    not JSON or not a JSON object, gives `{"status_error": "<one line>"}`, and fields of the
    wrong type are dropped, so one bad run can never break a listing of all runs."""
    run_dir = Path(run_dir)
    path = run_dir / STATUS_FILE
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        if not run_dir.is_dir():
            return {STATUS_ERROR: f"run folder {run_dir} is missing"}
        return {}
    except IsADirectoryError:
        return {STATUS_ERROR: f"{path} is a directory, not a status file"}
    except OSError as exc:
        return {STATUS_ERROR: f"{path} cannot be read: {exc.strerror or exc}"}
    except (UnicodeDecodeError, ValueError):
        return {STATUS_ERROR: f"{path} is not valid JSON (corrupt or binary)"}
    if not isinstance(data, dict):
        return {STATUS_ERROR: f"{path} holds a JSON {type(data).__name__}, not an object"}
    return _clean(data, path)


def _clean(status: dict, path: Path) -> dict:
    """Drop fields whose type would crash a reader (a number that is a string, a bad state)."""
    bad = [k for k in _NUMERIC if k in status and status[k] is not None
           and (isinstance(status[k], bool) or not isinstance(status[k], (int, float)))]
    if status.get("state") is not None and status.get("state") not in JOB_STATES:
        bad.append("state")
    if status.get("metrics") is not None and not isinstance(status.get("metrics"), dict):
        bad.append("metrics")
    if status.get("checkpoints") is not None and not isinstance(status.get("checkpoints"), list):
        bad.append("checkpoints")
    if status.get("error") is not None and not isinstance(status.get("error"), str):
        status["error"] = str(status["error"])
    for key in bad:
        status.pop(key)
    if bad:
        status[STATUS_ERROR] = f"{path}: invalid field(s) {', '.join(bad)}"
    return status


def write_status(run_dir: str | Path, **fields) -> dict:
    """Merge `fields` into status.json atomically (write a temp file, then rename).

    Raises OSError (full disk, folder gone, status.json replaced by a directory) and leaves no
    temp file behind; callers that only keep files in step decide whether that matters."""
    run_dir = Path(run_dir)
    status = read_status(run_dir)
    status.pop(STATUS_ERROR, None)
    status.update(fields)
    status["updated_at"] = time.time()
    tmp = run_dir / f".{STATUS_FILE}.{os.getpid()}.tmp"
    try:
        tmp.write_text(json.dumps(status, default=str))
        os.replace(tmp, run_dir / STATUS_FILE)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return status


def append_metrics(run_dir: str | Path, record: dict) -> None:
    with (Path(run_dir) / METRICS_FILE).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, default=float) + "\n")
        fh.flush()


@dataclass
class MetricLines:
    """metrics.jsonl as written: good records in file order, and how many lines were bad."""
    records: list[dict]
    n_bad: int


def read_metric_lines(run_dir: str | Path) -> MetricLines:
    """Every parseable record in file order; a malformed line is skipped and counted, never
    stops the reading (a half-written last line, without its newline, is not counted)."""
    path = Path(run_dir) / METRICS_FILE
    out, n_bad = [], 0
    try:
        fh = path.open("rb")
    except OSError:
        return MetricLines([], 0)
    with fh:
        for raw in fh:
            try:
                record = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                n_bad += raw.endswith(b"\n")
                continue
            if isinstance(record, dict):
                out.append(record)
            else:
                n_bad += 1
    return MetricLines(out, n_bad)


def read_metrics(run_dir: str | Path) -> list[dict]:
    """One record per step, in step order, so charts never zig-zag.

    Train and eval metrics of one step come as separate lines: they are merged. A resumed job
    logs again the steps after its last checkpoint (the step goes back): the new attempt's
    record replaces the old one for that step (last wins)."""
    by_step: dict = {}  # step -> (attempt, merged record)
    unstepped, attempt, prev = [], 0, None
    for record in read_metric_lines(run_dir).records:
        step = record.get("step")
        if not isinstance(step, (int, float)) or isinstance(step, bool):
            unstepped.append(record)
            continue
        if prev is not None and step < prev:
            attempt += 1
        prev = step
        seen = by_step.get(step)
        if seen is not None and seen[0] == attempt:
            seen[1].update(record)
        else:
            by_step[step] = (attempt, dict(record))
    return [by_step[s][1] for s in sorted(by_step)] + unstepped


def log_tail(run_dir: str | Path, n_lines: int = 30) -> str:
    """The last `n_lines` of log.txt (cheap on big logs: reads only the end of the file)."""
    path = Path(run_dir) / LOG_FILE
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-n_lines:])


def read_job(run_dir: str | Path) -> dict:
    path = Path(run_dir) / JOB_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def write_job(run_dir: str | Path, job: dict) -> None:
    (Path(run_dir) / JOB_FILE).write_text(json.dumps(job, indent=2, default=str))


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
