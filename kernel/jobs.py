"""Durable jobs (train, eval, ...): detached processes whose state lives in the store and files.

Why this shape: a job must survive UI reruns, browser reloads and a restart of the UI, and a job
that dies must never stay "running". So a job is a subprocess in its own process group
(`start_new_session=True`) running `python -m kernel.job_runner RUN_DIR`, which calls
`<module>.main(run_dir)` and writes status.json / metrics.jsonl / log.txt. It never opens the
database; `refresh(store)` ingests those files into `runs` and `checkpoints` and marks a job whose
pid is gone without a final state as failed, with the log tail. `cancel` kills the whole group.

    run_id = launch(store, "eval", "evals.eval_worker", config={...}, prepare=write_inputs)
    refresh(store); get_run(store, run_id)["state"]
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from kernel import processes
from kernel.errors import NotFoundError, StoreWriteError, StudioError
from kernel.status import (
    CHECKPOINTS_DIR,
    META_FILE,
    STATUS_ERROR,
    TERMINAL,
    adapter_hash,
    log_tail,
    process_start,
    read_job,
    read_metric_lines,
    read_metrics,
    read_status,
    write_job,
    write_status,
)

__all__ = ["launch", "refresh", "reap_children", "list_runs", "get_run", "cancel", "resume", "wait",
           "read_metrics", "read_status", "log_tail", "pid_alive"]

log = logging.getLogger(__name__)
_children: dict[int, subprocess.Popen] = {}  # keeps Popen objects so they are not GC-warned


def new_run_id(kind: str) -> str:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{kind}-{stamp}-{secrets.token_hex(2)}"


def _detect_device() -> str:
    from kernel.job_runner import _gpu_count

    return "gpu" if _gpu_count() else "cpu"


def launch(store, kind: str, module: str, config: dict | None = None,
           prepare: Callable[[Path], None] | None = None, name: str | None = None,
           device: str | None = "auto", run_id: str | None = None) -> str:
    """Create `runs/<id>/`, let `prepare(run_dir)` write the inputs, record the run, start it.

    Record first, then start: the row exists (state queued) before any process does, so no job
    can run unseen by `list_runs`. If `prepare` or the record fails (e.g. the store stays
    busy), the folder is removed, the store is unchanged and nothing was started; if the start
    fails, the run is recorded as failed. `device` "auto" takes the GPU lock when the machine
    has GPUs, else the workspace's CPU lock; None = no lock.
    """
    reap_children()
    run_id = run_id or new_run_id(kind)
    run_dir = store.workspace.run_dir(run_id)
    run_dir.mkdir(parents=True, exist_ok=False)
    try:
        write_job(run_dir, {"module": module, "kind": kind, "run_id": run_id,
                            "device": _detect_device() if device == "auto" else device,
                            "lock_dir": str(store.workspace.root / "locks"), "resume": False,
                            "attempt": 1})
        write_status(run_dir, state="queued", progress=0.0, launched_at=time.time())
        if prepare is not None:
            prepare(run_dir)
        with store.transaction() as con:
            con.execute("INSERT INTO runs (id, kind, name, state, config, run_dir) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        [run_id, kind, name, "queued", json.dumps(config or {}, default=str),
                         str(run_dir)])
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    _start(store, run_id, run_dir)
    return run_id


def _start(store, run_id: str, run_dir: Path) -> int:
    """Spawn the recorded run; on failure mark it failed (files, then store) and raise."""
    try:
        pid = _spawn(run_dir)
    except Exception as exc:
        message = f"could not start the job process: {exc}"
        with contextlib.suppress(OSError):
            write_status(run_dir, state="failed", error=message, finished_at=time.time())
        with contextlib.suppress(StudioError), store.transaction() as con:
            con.execute("UPDATE runs SET state = 'failed', error = ?, finished_at = ? "
                        "WHERE id = ?", [message, dt.datetime.now(), run_id])
        raise StudioError(f"run {run_id}: {message}") from exc
    # The runner writes its pid into status.json itself, and refresh reads it from there;
    # recording it here too is a convenience that must not make the caller wait long.
    with contextlib.suppress(StudioError), store.connect(timeout_s=5.0) as con:
        con.execute("UPDATE runs SET pid = ?, pgid = ? WHERE id = ?", [pid, pid, run_id])
    return pid


def _spawn(run_dir: Path) -> int:
    """Start the job runner detached, in its own session/process group (pgid == pid)."""
    with (run_dir / "log.txt").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kernel.job_runner", str(run_dir)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    _children[proc.pid] = proc
    return proc.pid


def reap_children() -> list[int]:
    """Collect the exit status of our finished job processes, so a long-lived launcher (the UI
    server) keeps no zombies. Called on every launch, refresh and liveness check."""
    done = [pid for pid, proc in list(_children.items()) if proc.poll() is not None]
    for pid in done:
        _children.pop(pid, None)
    return done


def pid_alive(pid: int | None, start: int | None = None) -> bool:
    """True while the process exists and is not a zombie (reaps our own exited children).
    With `start` (see `process_start`), a different process that reuses the pid counts as dead."""
    if not pid:
        return False
    if start is not None and process_start(pid) not in (None, start):
        return False
    reap_children()
    if pid in _children:
        return True
    return processes.pid_alive(pid)


def _ts(value) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(value) if isinstance(value, (int, float)) else None


LAUNCH_GRACE_S = 60.0  # a recorded run whose process has not yet written its pid


def _died_message(pid: int | None, run_dir: Path) -> str:
    if not run_dir.is_dir():
        return f"run folder {run_dir} is missing (deleted?); process {pid} is not running"
    if pid is None:
        return "the job process never started (its launcher died or could not spawn it)"
    tail = log_tail(run_dir, 20)
    return (f"process {pid} died without finishing (killed, out of memory or crashed); "
            f"last log lines:\n{tail}")


def _next_state(row: dict, status: dict, run_dir: Path) -> dict | None:
    """The update a run's row needs from its status file and pid, or None."""
    state = status.get("state")
    pid = status.get("pid") or row["pid"]
    if state in TERMINAL:
        return {"state": state, "error": status.get("error"),
                "finished_at": _ts(status.get("finished_at")), "started_at": _ts(status.get("started_at"))}
    if pid is None and run_dir.is_dir():
        launched = status.get("launched_at") or status.get("updated_at")
        if launched is None and isinstance(row.get("created_at"), dt.datetime):
            launched = row["created_at"].timestamp()
        if launched is None or time.time() - launched < LAUNCH_GRACE_S:
            return None  # recorded, process starting
    if not pid_alive(pid, status.get("pid_start")):
        # Re-read: the job may have written its final state between our two looks.
        status = read_status(run_dir)
        if status.get("state") in TERMINAL:
            return _next_state(row, status, run_dir)
        message = _died_message(pid, run_dir)
        with contextlib.suppress(OSError):  # full disk, folder gone: the store still learns it
            write_status(run_dir, state="failed", error=message, finished_at=time.time())
        return {"state": "failed", "error": message, "finished_at": dt.datetime.now(),
                "started_at": _ts(status.get("started_at"))}
    if state and state != row["state"]:
        return {"state": state, "started_at": _ts(status.get("started_at")), "pid": pid}
    return None


def refresh(store) -> list[str]:
    """Ingest status files and new checkpoints of unfinished runs; returns the ids that changed."""
    reap_children()
    rows = store.query("SELECT id, state, pid, run_dir, config, created_at FROM runs "
                       "WHERE state NOT IN ('completed', 'failed', 'cancelled')")
    updates, checkpoints = [], []
    known = _known_checkpoints(store, [r["id"] for r in rows])
    for row in rows:
        run_dir = Path(row["run_dir"])
        change = _next_state(row, read_status(run_dir), run_dir)
        if change:
            updates.append((row["id"], change))
        checkpoints += _scan_checkpoints(row["id"], run_dir, known)
    if not updates and not checkpoints:
        return []
    with store.transaction() as con:
        for run_id, change in updates:
            cols = [k for k, v in change.items() if v is not None or k == "error"]
            sets = ", ".join(f"{c} = ?" for c in cols)  # column names are ours, values are params
            con.execute(f"UPDATE runs SET {sets} WHERE id = ?", [change[c] for c in cols] + [run_id])
        _insert_checkpoints(con, checkpoints)
    return [u[0] for u in updates]


def _known_checkpoints(store, run_ids: list[str]) -> set[str]:
    if not run_ids:
        return set()
    marks = ", ".join("?" for _ in run_ids)
    rows = store.query(f"SELECT id FROM checkpoints WHERE run_id IN ({marks})", run_ids)
    return {r["id"] for r in rows}


def _scan_checkpoints(run_id: str, run_dir: Path, known: set[str]) -> list[dict]:
    """Complete checkpoint folders (meta.json is written last) not yet in the store."""
    found = []
    for meta_path in sorted((run_dir / CHECKPOINTS_DIR).glob(f"step-*/{META_FILE}")):
        if f"{run_id}/{meta_path.parent.name}" in known:
            continue
        folder = meta_path.parent
        try:
            meta = json.loads(meta_path.read_text())
            digest = adapter_hash(folder)
        except (OSError, ValueError):
            continue
        if not isinstance(meta, dict):
            continue
        found.append({"id": f"{run_id}/{folder.name}", "run_id": run_id, "step": meta.get("step"),
                      "path": str(folder), "base_model": meta.get("base_model"),
                      "adapter_hash": digest, "metrics": meta.get("metrics") or {}})
    return found


def _insert_checkpoints(con, checkpoints: list[dict]) -> None:
    for c in checkpoints:
        con.execute(
            "INSERT INTO checkpoints (id, run_id, step, path, base_model, adapter_hash, metrics) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET metrics = excluded.metrics, "
            "adapter_hash = excluded.adapter_hash",
            [c["id"], c["run_id"], c["step"], c["path"], c["base_model"], c["adapter_hash"],
             json.dumps(c["metrics"])])
        base_id = f"base:{c['base_model']}"
        con.execute("INSERT INTO checkpoints (id, path, base_model) VALUES (?, ?, ?) "
                    "ON CONFLICT (id) DO NOTHING", [base_id, c["base_model"], c["base_model"]])


def list_runs(store, kind: str | None = None, do_refresh: bool = True) -> list[dict]:
    """Runs, newest first, after ingesting what running jobs wrote.

    A run whose folder or status file is broken is listed with `problem` set; it never breaks
    the listing. If the refresh cannot write (disk full), the stored states are listed."""
    if do_refresh:
        try:
            refresh(store)
        except (StoreWriteError, OSError) as exc:
            log.warning("runs: could not refresh job states: %s", exc)
    sql = ("SELECT id, kind, name, state, pid, created_at, started_at, finished_at, error, run_dir "
           "FROM runs")
    params: list = []
    if kind:
        sql += " WHERE kind = ?"
        params.append(kind)
    runs = store.query(sql + " ORDER BY created_at DESC, id DESC", params)
    for run in runs:
        status = read_status(run["run_dir"])
        run["progress"] = status.get("progress")
        run["step"] = status.get("step")
        run["metrics"] = status.get("metrics")
        run["problem"] = status.get(STATUS_ERROR)
    return runs


def get_run(store, run_id: str, do_refresh: bool = True) -> dict:
    """One run with its status file, last metrics, checkpoints and log tail."""
    if do_refresh:
        refresh(store)
    rows = store.query("SELECT * FROM runs WHERE id = ?", [run_id])
    if not rows:
        raise NotFoundError(f"run {run_id!r} not found")
    run = rows[0]
    run["config"] = json.loads(run["config"]) if isinstance(run["config"], str) else run["config"]
    run["status"] = read_status(run["run_dir"])
    run["problem"] = run["status"].get(STATUS_ERROR)
    run["checkpoints"] = store.query(
        "SELECT id, step, path, metrics FROM checkpoints WHERE run_id = ? ORDER BY step", [run_id])
    metrics = read_metrics(run["run_dir"])
    run["last_metrics"] = metrics[-1] if metrics else None
    run["n_metric_lines"] = len(metrics)  # one per step
    run["n_bad_metric_lines"] = read_metric_lines(run["run_dir"]).n_bad
    return run


def cancel(store, run_id: str, grace_s: float = 10.0) -> dict:
    """SIGTERM the run's process group, SIGKILL it after `grace_s`, mark it cancelled."""
    run = get_run(store, run_id)
    if run["state"] in TERMINAL:
        raise StudioError(f"run {run_id} is already {run['state']}")
    pid = run["status"].get("pid") or run["pid"]
    pgid = run["status"].get("pgid") or run["pgid"] or pid
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    _signal_group(pgid, signal.SIGKILL)  # whatever is left of the group (children, the worker)
    while pid_alive(pid) and time.monotonic() < deadline + 5:
        time.sleep(0.05)
    write_status(run["run_dir"], state="cancelled", error="cancelled by user", finished_at=time.time())
    with store.transaction() as con:
        con.execute("UPDATE runs SET state = 'cancelled', error = ?, finished_at = ? WHERE id = ?",
                    ["cancelled by user", dt.datetime.now(), run_id])
    refresh(store)
    return get_run(store, run_id, do_refresh=False)


def _signal_group(pgid: int | None, sig: int) -> None:
    if not pgid:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def resume(store, run_id: str) -> dict:
    """Relaunch a failed or cancelled run in its folder; the worker continues from its last checkpoint."""
    run = get_run(store, run_id)
    if run["state"] not in ("failed", "cancelled"):
        raise StudioError(f"run {run_id} is {run['state']}; only failed or cancelled runs resume")
    run_dir = Path(run["run_dir"])
    job = read_job(run_dir)
    job.update(resume=True, attempt=int(job.get("attempt", 1)) + 1)
    write_job(run_dir, job)
    write_status(run_dir, state="queued", error=None, finished_at=None, pid=None, pgid=None,
                 pid_start=None, launched_at=time.time())
    with store.transaction() as con:  # record first, then start (see launch)
        con.execute("UPDATE runs SET state = 'queued', error = NULL, finished_at = NULL, "
                    "pid = NULL, pgid = NULL WHERE id = ?", [run_id])
    _start(store, run_id, run_dir)
    return get_run(store, run_id, do_refresh=False)


def wait(store, run_id: str, timeout_s: float | None = None, poll_s: float = 0.5,
         on_metrics: Callable[[dict], None] | None = None) -> dict:
    """Block until the run reaches a final state (refreshing the store); returns the run."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    seen = 0
    while True:
        run = get_run(store, run_id)
        if on_metrics is not None:
            records = read_metric_lines(run["run_dir"]).records
            for record in records[seen:]:
                on_metrics(record)
            seen = max(seen, len(records))
        if run["state"] in TERMINAL:
            return run
        if deadline is not None and time.monotonic() > deadline:
            raise StudioError(f"run {run_id} still {run['state']} after {timeout_s:.0f}s")
        time.sleep(poll_s)
