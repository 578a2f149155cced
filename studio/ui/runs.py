"""Reading a job's run folder for the live views: metrics, log tail, progress.

Jobs write `runs/<id>/metrics.jsonl`, `log.txt` and `status.json` (training.status); the live
views read them through that module every 2 s without touching the database.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from training.status import JOB_STATES, TERMINAL, read_metrics, read_status
from training.status import log_tail as read_log_tail

CHART_METRICS = {"loss": "train loss", "eval_loss": "eval loss", "lr": "learning rate",
                 "tokens_per_s": "tokens / s"}
ACTIVE = tuple(s for s in JOB_STATES if s not in TERMINAL)  # queued, running


def metrics_frame(runs: list[dict]) -> pd.DataFrame:
    """Long table (run, step, metric, value) of the chartable metrics of several runs."""
    records: list[dict[str, Any]] = []
    for run in runs:
        label = run.get("name") or run["id"]
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
    """Fraction done as the job last reported it (status.json `progress`), if it did."""
    value = read_status(run["run_dir"]).get("progress")
    return max(0.0, min(1.0, float(value))) if isinstance(value, (int, float)) else None
