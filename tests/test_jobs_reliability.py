"""Jobs under bad luck, with real processes and files: a busy store at launch, broken run
folders, malformed metrics, a full disk while writing status, zombies under a long-lived
launcher (issue 14, items 1-4)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from kernel import jobs
from kernel.errors import StudioError, WorkspaceBusyError
from kernel.status import METRICS_FILE, read_metric_lines, read_metrics, read_status
from kernel.store import Store
from studio.cli import main as studio_main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch):
    monkeypatch.chdir(REPO)  # job processes import tests.test_jobs from the repo root


def _prepare(steps=1, sleep=0.0):
    def prepare(run_dir: Path) -> None:
        (run_dir / "params.json").write_text(json.dumps({"steps": steps, "sleep": sleep}))
    return prepare


def _job_processes(workspace_root: Path) -> list[int]:
    """Live job-runner processes working in this workspace (from /proc, not from our records)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if (b"kernel.job_runner" in cmd and state != "Z"
                and any(str(workspace_root).encode() in c for c in cmd)):
            found.append(int(entry.name))
    return found


def _hold_lock(db_path: Path, seconds: float) -> subprocess.Popen:
    """A second process holding the DuckDB file read-write (as the UI or an import would)."""
    code = textwrap.dedent(f"""
        import duckdb, time
        con = duckdb.connect({str(db_path)!r})
        print("locked", flush=True)
        time.sleep({seconds})
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_busy_store_at_launch_leaves_nothing_running(workspace):
    """Item 1: the record comes first; when the store stays locked, no job process exists."""
    store = Store(workspace, lock_timeout_s=1.0)
    holder = _hold_lock(store.path, 4.0)
    try:
        with pytest.raises(WorkspaceBusyError):
            jobs.launch(store, "test", "tests.test_jobs", prepare=_prepare(steps=50, sleep=0.1),
                        device=None)
        time.sleep(0.5)  # a job started before the record would now be running
        assert _job_processes(workspace.root) == []
        assert list(workspace.runs_dir.iterdir()) == []
    finally:
        holder.kill()
        holder.wait()
    assert jobs.list_runs(store) == []


def test_failed_start_is_recorded_as_failed(store):
    """Item 1: the process cannot be started (its log path is a directory): the recorded run
    says failed with the reason, and nothing runs."""
    def prepare(run_dir: Path) -> None:
        (run_dir / "log.txt").mkdir()

    with pytest.raises(StudioError, match="could not start the job process"):
        jobs.launch(store, "test", "tests.test_jobs", prepare=prepare, device=None)
    (run,) = jobs.list_runs(store)
    assert run["state"] == "failed" and "could not start" in run["error"]
    assert _job_processes(store.workspace.root) == []


def test_recorded_run_whose_process_is_starting_is_not_marked_failed(store):
    """Item 1: between the record and the runner writing its pid, refresh must wait."""
    run_id = jobs.launch(store, "test", "tests.test_jobs", prepare=_prepare(), device=None)
    assert jobs.get_run(store, run_id)["state"] in ("queued", "running", "completed")
    assert jobs.wait(store, run_id, timeout_s=60)["state"] == "completed"


def _fake_run(store, run_id: str, run_dir: Path, state: str = "running") -> None:
    with store.transaction() as con:
        con.execute("INSERT INTO runs (id, kind, state, pid, pgid, config, run_dir) "
                    "VALUES (?, 'train', ?, ?, ?, '{}', ?)",
                    [run_id, state, _dead_pid(), None, str(run_dir)])


def test_runs_lists_every_run_when_some_are_broken(store, capsys):
    """Item 2: a deleted folder, status.json as a JSON list, binary, a directory, and fields of
    the wrong type: each bad run is reported, the good one and the listing still work."""
    runs_dir = store.workspace.runs_dir
    good = jobs.launch(store, "test", "tests.test_jobs", prepare=_prepare(), device=None)
    assert jobs.wait(store, good, timeout_s=60)["state"] == "completed"
    bad = {"deleted": None, "list": b"[1, 2]", "binary": b"\x00\xff\xfe garbage",
           "dir": "dir", "types": b'{"state": "weird", "progress": "99%", "step": [1]}'}
    for name, content in bad.items():
        run_dir = runs_dir / f"bad-{name}"
        run_dir.mkdir()
        if content == "dir":
            (run_dir / "status.json").mkdir()
        elif content is not None:
            (run_dir / "status.json").write_bytes(content)
        _fake_run(store, f"bad-{name}", run_dir)
        if content is None:
            run_dir.rmdir()
    # a finished run whose status went bad afterwards is still listed
    (runs_dir / good / "status.json").write_bytes(b"\x89PNG\r\n")

    listed = {r["id"]: r for r in jobs.list_runs(store)}
    assert set(listed) == {good, *(f"bad-{n}" for n in bad)}
    assert listed[good]["state"] == "completed" and "not valid JSON" in listed[good]["problem"]
    for name in bad:
        assert listed[f"bad-{name}"]["state"] == "failed", name
    assert "missing" in listed["bad-deleted"]["error"]
    assert "directory" in listed["bad-dir"]["problem"]  # cannot be rewritten: still reported
    # the dead runs' status files were rewritten with the failure, readable again
    assert read_status(runs_dir / "bad-list")["state"] == "failed"
    assert read_status(runs_dir / "bad-types")["state"] == "failed"

    capsys.readouterr()
    studio_main(["--workspace", str(store.workspace.root), "runs"])
    out = capsys.readouterr().out
    assert good in out and "bad-binary" in out and "bad-deleted" in out
    studio_main(["--workspace", str(store.workspace.root), "run", "show", "bad-list", "--json"])
    assert json.loads(capsys.readouterr().out)["state"] == "failed"


@contextlib.contextmanager
def small_fs(path: Path, size: str = "1m"):
    """A real tmpfs of `size` at `path`, or skip with the reason when mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    got = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                         capture_output=True, text=True)
    if got.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({got.stderr.strip() or 'not root'})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(folder: Path) -> None:
    with contextlib.suppress(OSError), (folder / "filler").open("wb") as fh:
        while True:
            fh.write(b"\0" * 65536)
            fh.flush()


def test_runs_survives_a_full_disk_while_writing_status(store, tmp_path):
    """Item 2: the run folder's disk is full when refresh marks the dead job failed."""
    with small_fs(tmp_path / "full") as mnt:
        run_dir = mnt / "run-full"
        run_dir.mkdir()
        (run_dir / "status.json").write_text(json.dumps({"state": "running", "pid": _dead_pid()}))
        _fake_run(store, "run-full", run_dir)
        _fill(mnt)
        (run,) = jobs.list_runs(store)
        assert run["state"] == "failed"
        assert read_status(run_dir)["state"] == "running"  # the file could not change
        assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]


def test_metrics_skip_bad_lines_and_keep_one_record_per_step(tmp_path):
    """Item 3: a malformed line mid-file is skipped and counted; a resume that logs steps
    again gives one record per step (the later attempt wins); eval lines merge into their step."""
    lines = [json.dumps({"step": s, "loss": 10.0 - s}) for s in (2, 4, 6)]
    lines.insert(1, '{"step": 3, "loss": ')  # cut mid-file (a crash, a full disk)
    lines.append("\x00\x01 binary")
    lines.append(json.dumps({"step": 6, "eval_loss": 7.5}))
    lines += [json.dumps({"step": s, "loss": 100.0 + s}) for s in (4, 6, 8)]  # resumed from 3
    (tmp_path / METRICS_FILE).write_text("\n".join(lines) + "\n" + '{"step": 10, "lo')
    got = read_metrics(tmp_path)
    assert [r["step"] for r in got] == [2, 4, 6, 8]
    assert [r["loss"] for r in got] == [8.0, 104.0, 106.0, 108.0]
    assert "eval_loss" not in got[2]  # the old attempt's record for step 6 was replaced
    raw = read_metric_lines(tmp_path)
    assert raw.n_bad == 2 and len(raw.records) == 7  # the unfinished last line is not "bad"


def test_run_show_reads_past_a_bad_metrics_line(store, capsys):
    run_id = jobs.launch(store, "test", "tests.test_jobs", prepare=_prepare(), device=None)
    jobs.wait(store, run_id, timeout_s=60)
    path = store.workspace.run_dir(run_id) / METRICS_FILE
    path.write_text("\n".join([json.dumps({"step": 1, "loss": 2.0}), "nonsense",
                               json.dumps({"step": 3000, "loss": 0.5})]) + "\n")
    run = jobs.get_run(store, run_id)
    assert run["last_metrics"]["step"] == 3000 and run["n_bad_metric_lines"] == 1


ZOMBIE_PROBE = textwrap.dedent("""
    import json, os, sys, time
    from pathlib import Path
    from kernel.store import Store
    from kernel.workspace import Workspace
    from kernel import jobs
    from kernel.status import read_status

    store = Store(Workspace.open(sys.argv[1]))
    def prepare(run_dir):
        (run_dir / "params.json").write_text(json.dumps({"steps": 1, "sleep": 0}))
    ids = [jobs.launch(store, "test", "tests.test_jobs", prepare=prepare, device=None)
           for _ in range(2)]
    deadline = time.monotonic() + 60
    while any(read_status(store.workspace.run_dir(i)).get("state") != "completed" for i in ids):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(1.0)  # the runners have exited by now
    jobs.list_runs(store)  # what the UI's status bar does on every page
    me = str(os.getpid())
    zombies = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat[1] == me and stat[0] == "Z":
            zombies.append(entry.name)
    print(json.dumps({"zombies": zombies}))
""")


def test_long_lived_launcher_keeps_no_zombies(workspace):
    """Item 4: a process that launches jobs and lives on (the UI server) reaps them."""
    got = subprocess.run([sys.executable, "-c", ZOMBIE_PROBE, str(workspace.root)], cwd=REPO,
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout.strip().splitlines()[-1]) == {"zombies": []}
