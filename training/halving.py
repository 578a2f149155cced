"""Asynchronous successive halving (ASHA, Li et al. 2020) decided inside each training run.

Why in the run, not in a process that waits: a sweep is often started `--detach`ed with
nobody watching, and weak configs must still be stopped. So each run of a halving sweep
carries `halving.json` ({"group": sweep id, "eta": 2}, written at launch) and a Trainer
callback that, after each evaluation, compares its eval loss at every rung so far with what
the sweep's other runs recorded at the same rungs in their `metrics.jsonl`; a run outside the
best 1/eta stops itself (`control.should_training_stop`). Workers never open the database:
peers are found by their `halving.json` beside this run's folder.

The callback is `training.callbacks.HalvingCallback`; this module holds the one rule
(`halving_stops`) and the files, without importing transformers, so listings read a stop
cheaply. A run stopped this way ends `completed` (it stopped cleanly, as early stopping does;
its last checkpoint is saved and usable), neither failed nor cancelled, with
`stopped_by_halving` in its status.json (step, loss, rank, n, note). It is no candidate for the
sweep's winner: `evals.sweep.finish` evaluates only the runs that trained to the end.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from kernel import status as st

HALVING_FILE = "halving.json"
STOP_KEY = "stopped_by_halving"   # status.json: why and where the run stopped itself


def halving_stops(losses: dict[str, dict[int, float]], active: set[str], eta: int,
                  last_step: int | dict[str, int]) -> list[dict]:
    """Which active runs to stop now: at a rung (an eval step before the run's last step,
    `last_step`, one for all or per run id), a run must be among the best ceil(n/eta) eval
    losses of the n runs that reached that rung.

    `losses`: run id -> {step: eval loss} for every run of the sweep (stopped ones included:
    they count at the rungs they reached). Returns [{run_id, step, loss, rank, n}].
    """
    stops = []
    for run_id in sorted(active):
        last = last_step[run_id] if isinstance(last_step, dict) else last_step
        for step in sorted(s for s in losses.get(run_id, {}) if s < last):
            peers = sorted(v[step] for v in losses.values() if step in v)
            mine = losses[run_id][step]
            rank = sum(1 for p in peers if p < mine)  # ties keep the run
            keep = math.ceil(len(peers) / eta)
            if rank >= keep:
                stops.append({"run_id": run_id, "step": step, "loss": mine, "rank": rank + 1,
                              "n": len(peers)})
                break
    return stops


def stop_note(stop: dict, eta: int) -> str:
    return (f"stopped by successive halving at step {stop['step']}: eval loss "
            f"{stop['loss']:.4f} ranked {stop['rank']} of {stop['n']} (keeps the best 1/{eta})")


def eval_losses(run_dir: str | Path) -> dict[int, float]:
    """step -> eval loss, from the run's metrics.jsonl."""
    return {int(r["step"]): float(r["eval_loss"]) for r in st.read_metrics(run_dir)
            if r.get("eval_loss") is not None and r.get("step") is not None}


def write_settings(run_dir: str | Path, group: str, eta: int) -> None:
    """Mark a run as a member of halving sweep `group` (at launch, before it starts)."""
    (Path(run_dir) / HALVING_FILE).write_text(json.dumps({"group": group, "eta": int(eta)}))


def read_settings(run_dir: str | Path) -> dict | None:
    try:
        data = json.loads((Path(run_dir) / HALVING_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("group") and data.get("eta") else None


def sweep_losses(run_dir: str | Path, group: str) -> dict[str, dict[int, float]]:
    """run id -> {step: eval loss} for every run folder beside `run_dir` in sweep `group`
    (this run included): what the sweep's runs recorded so far."""
    out = {}
    for marker in Path(run_dir).parent.glob(f"*/{HALVING_FILE}"):
        settings = read_settings(marker.parent)
        if settings and settings["group"] == group:
            out[marker.parent.name] = eval_losses(marker.parent)
    return out


def stopped(run_dir: str | Path) -> dict | None:
    """The halving stop a run recorded ({run_id, step, loss, rank, n, eta, note}), or None."""
    record = st.read_status(run_dir).get(STOP_KEY)
    return record if isinstance(record, dict) else None


def decide(run_dir: str | Path, group: str, eta: int, step: int, eval_loss: float,
           last_step: int) -> dict | None:
    """The decision a run of sweep `group` takes after evaluating at `step`: None to go on,
    else the stop ({run_id, step, loss, rank, n, eta, note}) as halving_stops gives it."""
    me = Path(run_dir).name
    losses = sweep_losses(run_dir, group)
    losses.setdefault(me, {})[int(step)] = float(eval_loss)
    stops = halving_stops(losses, {me}, eta, last_step)
    return {**stops[0], "eta": int(eta), "note": stop_note(stops[0], eta)} if stops else None
