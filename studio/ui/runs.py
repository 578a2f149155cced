"""Reading a job's run folder for the live views: labels, metrics, log tail, progress, ETA.

Jobs write `runs/<id>/metrics.jsonl`, `log.txt` and `status.json` (kernel.status); the live
views read them through that module every 2 s without touching the database. `run_label` is
the one way a run is named on every page (name + short id).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pandas as pd

from kernel.status import JOB_STATES, TERMINAL, read_metrics, read_status
from kernel.status import log_tail as read_log_tail
from training.checkpoints import parse_checkpoint_id

CHART_METRICS = {"loss": "train loss", "eval_loss": "eval loss", "lr": "learning rate",
                 "tokens_per_s": "tokens / s"}
ACTIVE = tuple(s for s in JOB_STATES if s not in TERMINAL)  # queued, running
_GENERATED_ID = re.compile(r"^[a-z]+-\d{8}-\d{6}-([0-9a-f]{4,})$")  # kernel.jobs.new_run_id


def short_id(run_id: str) -> str:
    """The random tail of a generated run id (`train-20261203-231032-ab12` -> `ab12`); other
    ids are short already and stay whole."""
    match = _GENERATED_ID.match(run_id)
    return match.group(1) if match else run_id


def run_label(run: dict) -> str:
    """How every page names a run: `name · ab12` (name + short id), or the id when unnamed."""
    name = (run.get("name") or "").strip()
    return f"{name} · {short_id(run['id'])}" if name and name != run["id"] else run["id"]


def checkpoint_label(checkpoint: str, runs_by_id: dict[str, dict] | None = None) -> str:
    """`<run label> / step-N` for run checkpoints, `base: <model name>` for base models."""
    parsed = parse_checkpoint_id(checkpoint)
    if parsed is None:
        return checkpoint
    if parsed.base_model is not None:
        return f"base: {model_label(parsed.base_model)}"
    run = (runs_by_id or {}).get(parsed.run_id) or {"id": parsed.run_id}
    return f"{run_label(run)} / step-{parsed.step}"


def model_label(model: str) -> str:
    """A model's name rather than its path: the last folder of a path, a hub name as is."""
    model = model.rstrip("/")
    return model.rsplit("/", 1)[-1] if model.startswith(("/", ".", "~")) else model


def metrics_frame(runs: list[dict]) -> pd.DataFrame:
    """Long table (run, step, metric, value) of the chartable metrics of several runs."""
    records: list[dict[str, Any]] = []
    for run in runs:
        label = run_label(run)
        for rec in read_metrics(run["run_dir"]):
            step = rec.get("step")
            if step is None:
                continue
            for key, title in CHART_METRICS.items():
                value = rec.get(key)
                if isinstance(value, (int, float)):
                    records.append({"run": label, "step": step, "metric": title, "value": value})
    return pd.DataFrame(records, columns=["run", "step", "metric", "value"])


def log_tail(run: dict, lines: int = 40) -> str:
    return read_log_tail(run["run_dir"], lines)


def progress(run: dict) -> float | None:
    """Fraction done as the job last reported it (status.json `progress`), if it did; a
    completed job is done whatever it last wrote."""
    status = read_status(run["run_dir"])
    if (run.get("state") or status.get("state")) == "completed":
        return 1.0
    value = status.get("progress")
    return max(0.0, min(1.0, float(value))) if isinstance(value, (int, float)) else None


def format_duration(seconds: float) -> str:
    """`45s`, `3m 05s`, `1h 12m`: short enough for a progress caption."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def eta_left(status: dict, now: float | None = None) -> float | None:
    """Seconds left: the job's last estimate minus the time since it wrote it (never < 0)."""
    eta, at = status.get("eta_s"), status.get("updated_at")
    if not isinstance(eta, (int, float)):
        return None
    waited = (now or time.time()) - at if isinstance(at, (int, float)) else 0.0
    return max(0.0, eta - max(0.0, waited))


def progress_text(run: dict, status: dict | None = None) -> str:
    """One line under a progress bar: `step 12 of 40 · ETA 1m 05s` (train) or
    `64 of 128 generations · ETA 30s` (eval); what the job is waiting for while queued."""
    status = read_status(run["run_dir"]) if status is None else status
    state = run.get("state") or status.get("state")
    if state == "queued":
        return ("waiting for the running job to finish (one compute job at a time)"
                if status.get("waiting_for") else "queued: starting")
    parts = []
    done, total = status.get("done"), status.get("total")
    step, max_steps = status.get("step"), status.get("max_steps")
    if isinstance(total, (int, float)) and total:
        parts.append(f"{int(done or 0)} of {int(total)} generations")
    elif isinstance(step, (int, float)):
        parts.append(f"step {int(step)} of {int(max_steps)}" if isinstance(max_steps, (int, float))
                     else f"step {int(step)}")
    if state == "running":
        left = eta_left(status)
        parts.append(f"ETA {format_duration(left)}" if left is not None else "ETA: measuring")
    elif state == "completed":
        elapsed = _elapsed(status)
        parts.append(f"finished in {format_duration(elapsed)}" if elapsed is not None
                     else "finished")
    return " · ".join(parts) or str(state or "")


def _elapsed(status: dict) -> float | None:
    start, end = status.get("started_at"), status.get("finished_at")
    if isinstance(start, (int, float)) and isinstance(end, (int, float)) and end >= start:
        return end - start
    return None


def checkpoint_progress(status: dict) -> list[dict]:
    """Per-checkpoint rows of an eval job (`checkpoints` in its status): checkpoint, done,
    total, fraction. Entries of the wrong shape are skipped (a status file is external data)."""
    out = []
    for entry in status.get("checkpoints") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            continue
        done, total = entry.get("done"), entry.get("total")
        if not isinstance(done, int) or not isinstance(total, int):
            continue
        out.append({"checkpoint": entry["name"], "done": done, "total": total,
                    "fraction": done / total if total else 1.0})
    return out


def merge_folder(workspace_root: Path, run: dict, checkpoint: str) -> Path:
    """A new folder under exports/ for a merged checkpoint: `<run name or id>-step-N`, with a
    number added when taken (merging never writes into an existing folder)."""
    step = checkpoint.rsplit("step-", 1)[-1]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", run.get("name") or run["id"]).strip("-.") or "run"
    base = Path(workspace_root) / "exports" / f"{stem}-step-{step}"
    folder, n = base, 2
    while folder.exists():
        folder, n = base.with_name(f"{base.name}-{n}"), n + 1
    return folder
