"""Durable jobs with real processes: a small worker defined here (`main(run_dir)`) that starts a
grandchild and sleeps, so cancel / kill -9 / queueing are checked on real process groups."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kernel import jobs
from kernel.errors import NotFoundError, StudioError
from kernel.status import read_status, write_status

REPO = Path(__file__).resolve().parents[1]


def main(run_dir: str) -> None:
    """The test worker: writes metrics, starts a grandchild in its group, then waits."""
    params = json.loads((Path(run_dir) / "params.json").read_text())
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    (Path(run_dir) / "child.pid").write_text(str(child.pid))
    print("worker: started grandchild", child.pid, flush=True)
    for step in range(params["steps"]):
        write_status(run_dir, progress=(step + 1) / params["steps"], step=step + 1)
        time.sleep(params["sleep"])
    child.kill()
    if params.get("fail"):
        raise RuntimeError("boom from the test worker")


def _launch(store, steps=1, sleep=0.05, fail=False, device="cpu"):
    def prepare(run_dir: Path) -> None:
        (run_dir / "params.json").write_text(json.dumps({"steps": steps, "sleep": sleep, "fail": fail}))

    return jobs.launch(store, "test", "tests.test_jobs", config={"steps": steps}, prepare=prepare,
                       device=device)


def _wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def _pid_gone(pid: int) -> bool:
    return not jobs.pid_alive(pid)


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch):
    monkeypatch.chdir(REPO)  # the job process imports tests.test_jobs from the repo root


@pytest.mark.slow
def test_job_completes_and_failure_is_recorded(store):
    ok = _launch(store, steps=2)
    bad = _launch(store, steps=1, fail=True)
    assert jobs.wait(store, ok, timeout_s=90)["state"] == "completed"
    run = jobs.wait(store, bad, timeout_s=90)
    assert run["state"] == "failed" and "boom from the test worker" in run["error"]
    assert "RuntimeError" in jobs.log_tail(run["run_dir"])


@pytest.mark.slow
def test_cancel_kills_the_whole_process_group(store):
    run_id = _launch(store, steps=1000, sleep=0.1)
    run_dir = store.workspace.run_dir(run_id)
    _wait_for(lambda: (run_dir / "child.pid").exists() and read_status(run_dir).get("state") == "running")
    pid = read_status(run_dir)["pid"]
    child = int((run_dir / "child.pid").read_text())
    run = jobs.cancel(store, run_id)
    assert run["state"] == "cancelled"
    assert _pid_gone(pid)
    _wait_for(lambda: _pid_gone(child), timeout=10)
    assert jobs.list_runs(store)[0]["state"] == "cancelled"
    with pytest.raises(StudioError, match="already cancelled"):
        jobs.cancel(store, run_id)


@pytest.mark.slow
def test_kill_9_is_detected_as_failed_with_log_tail(store):
    run_id = _launch(store, steps=1000, sleep=0.1)
    run_dir = store.workspace.run_dir(run_id)
    _wait_for(lambda: (run_dir / "child.pid").exists())
    pid = read_status(run_dir)["pid"]
    os.kill(pid, signal.SIGKILL)
    _wait_for(lambda: jobs.get_run(store, run_id)["state"] == "failed", timeout=15)
    run = jobs.get_run(store, run_id)
    assert f"process {pid} died" in run["error"] and "worker: started grandchild" in run["error"]
    assert read_status(run_dir)["state"] == "failed"
    os.killpg(pid, signal.SIGKILL)  # the orphaned grandchild of this test


@pytest.mark.slow
def test_second_cpu_job_queues_until_the_first_ends(store):
    first = _launch(store, steps=1000, sleep=0.1)
    first_dir = store.workspace.run_dir(first)
    _wait_for(lambda: read_status(first_dir).get("state") == "running")
    second = _launch(store, steps=1)
    second_dir = store.workspace.run_dir(second)
    _wait_for(lambda: read_status(second_dir).get("waiting_for"))
    time.sleep(0.5)
    assert read_status(second_dir)["state"] == "queued"
    jobs.cancel(store, first)
    assert jobs.wait(store, second, timeout_s=90)["state"] == "completed"


def test_prepare_failure_leaves_store_and_folder_clean(store):
    def prepare(run_dir: Path) -> None:
        raise StudioError("bad input")

    with pytest.raises(StudioError, match="bad input"):
        jobs.launch(store, "test", "tests.test_jobs", prepare=prepare)
    assert store.query("SELECT count(*) AS n FROM runs")[0]["n"] == 0
    assert list(store.workspace.runs_dir.iterdir()) == []


def test_unknown_run_is_not_found(store):
    with pytest.raises(NotFoundError):
        jobs.get_run(store, "train-nope")
    with pytest.raises(NotFoundError):
        jobs.cancel(store, "train-nope")


@pytest.mark.slow
def test_reused_pid_does_not_keep_a_dead_job_running(store):
    """The worker dies and its pid now names another live process (here: this test's own):
    the recorded process start time tells them apart, so the run is still marked failed."""
    run_id = _launch(store, steps=1000, sleep=0.1)
    run_dir = store.workspace.run_dir(run_id)
    _wait_for(lambda: (run_dir / "child.pid").exists())
    status = read_status(run_dir)
    assert status["pid_start"] is not None
    os.killpg(status["pid"], signal.SIGKILL)
    _wait_for(lambda: _pid_gone(status["pid"]))
    write_status(run_dir, pid=os.getpid())  # as if the OS had handed the pid to another process
    _wait_for(lambda: jobs.get_run(store, run_id)["state"] == "failed", timeout=15)
