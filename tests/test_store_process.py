"""The store process (kernel.store_server / store_client): a real server process on a real
DuckDB file, real client processes, kill -9 included (issue 14, item 5)."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import duckdb
import pytest

from curation.importer import import_file
from kernel import store_client
from kernel.errors import WorkspaceBusyError
from kernel.store import Store
from kernel.store_client import RemoteConnection
from tests.test_faults import ENV, snapshot, studio, write_rows

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def served(tmp_path):
    """A workspace with its store process running (ended by the test's teardown)."""
    store = Store(tmp_path / "ws")
    proc = store_client.start_server(store.workspace.root, parent=os.getpid())
    assert proc is not None and store_client.server_running(store.workspace.root)
    yield store, proc
    if proc.poll() is None:
        proc.terminate()
        proc.wait(30)


def _client(store: Store, code: str) -> subprocess.Popen:
    """A separate process using the Store; prints 'holding' once inside its block."""
    script = "from kernel.store import Store\n" \
             f"store = Store({str(store.workspace.root)!r})\n" + textwrap.dedent(code)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "holding"
    return proc


HOLD_A_WRITE = """
    import time
    with store.transaction() as con:
        con.execute("INSERT INTO datasets (name) VALUES ('pending')")
        print("holding", flush=True)
        time.sleep(6)
"""


def _names(store: Store, timeout_s: float | None = None) -> list[str]:
    with store.read(timeout_s) as con:
        return [r[0] for r in con.execute("SELECT name FROM datasets ORDER BY name").fetchall()]


def test_reader_does_not_wait_for_an_open_write(served):
    store, _ = served
    writer = _client(store, HOLD_A_WRITE)
    # with the file lock this read would wait for the writer's block and fail at 1 s
    assert _names(Store(store.workspace.root, lock_timeout_s=1), timeout_s=1) == []
    assert writer.wait(60) == 0
    assert _names(store) == ["pending"]  # committed: now everyone sees it


def test_client_killed_mid_write_leaves_the_store_as_it_was(served):
    store, _ = served
    writer = _client(store, HOLD_A_WRITE)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert _names(store) == []
    with store.transaction() as con:  # the writer's turn was given back
        con.execute("INSERT INTO datasets (name) VALUES ('after')")
    assert _names(store) == ["after"]


def test_writers_take_turns_and_a_waiting_writer_gives_up_with_a_clear_error(served):
    store, _ = served
    writer = _client(store, HOLD_A_WRITE)
    impatient = Store(store.workspace.root, lock_timeout_s=1)
    with pytest.raises(WorkspaceBusyError, match="is busy"), impatient.transaction() as con:
        con.execute("INSERT INTO datasets (name) VALUES ('late')")
    assert writer.wait(60) == 0
    assert _names(store) == ["pending"]  # the late write was not done, the first one was


def test_a_killed_store_process_loses_nothing_committed_and_the_file_lock_takes_over(served):
    store, proc = served
    data = store.workspace.root.parent / "d.jsonl"
    data.write_text("".join(json.dumps({"instruction": f"q{i}", "output": f"a{i}"}) + "\n"
                            for i in range(50)))
    import_file(store, data, "d")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not store_client.server_running(store.workspace.root)  # its socket is dead
    with store.connect() as con:  # the file lock, as without a store process
        assert not isinstance(con, RemoteConnection)
        assert con.execute("SELECT count(*) FROM rows WHERE dataset = 'd'").fetchone() == (50,)
    again = store_client.start_server(store.workspace.root, parent=os.getpid())
    try:
        assert again is not None and store.query("SELECT count(*) AS n FROM rows")[0]["n"] == 50
    finally:
        again.terminate()
        again.wait(30)


def test_values_and_frames_come_back_as_duckdb_gives_them(served):
    store, _ = served
    sql = ("SELECT 1 AS i, 'a''b' AS s, TIMESTAMP '2026-12-04 10:11:12.5' AS ts, "
           "DATE '2026-01-02' AS d, [1, 2] AS l, {'x': 1, 'y': 'z'} AS st, 3.25::DECIMAL(5, 2) "
           "AS dec, 'ab'::BLOB AS b, NULL AS n, INTERVAL 90 MINUTE AS iv, "
           "'6ba7b810-9dad-11d1-80b4-00c04fd430c8'::UUID AS u, sum(x) AS big, 0.5::DOUBLE AS f "
           "FROM range(3) t(x)")
    params_sql = "SELECT ?::TIMESTAMP, ?::DATE, ?::BLOB, ?::DECIMAL(5, 2), ?::UUID, ?"
    params = [dt.datetime(2026, 1, 1, 8), dt.date(2025, 5, 6), b"\x00\xff",
              decimal.Decimal("1.50"), uuid.UUID(int=5), [1, 2]]
    with duckdb.connect() as local, store.read() as remote:
        assert isinstance(remote, RemoteConnection)
        assert remote.execute(sql).fetchall() == local.execute(sql).fetchall()
        assert remote.execute(params_sql, params).fetchone() == \
            local.execute(params_sql, params).fetchone()
        assert [d[0] for d in remote.execute(sql).description] == \
            [d[0] for d in local.execute(sql).description]
        assert remote.execute("SELECT * FROM range(5) t(x)").df().equals(
            local.execute("SELECT * FROM range(5) t(x)").df())
        assert remote.execute("SELECT 1 WHERE false").fetchone() is None


def test_errors_keep_their_duckdb_class_and_arrow_tables_register(served):
    import pyarrow as pa

    store, _ = served
    with store.connect() as con:
        with pytest.raises(duckdb.CatalogException):
            con.execute("SELECT * FROM no_such_table")
        con.execute("INSERT INTO datasets (name) VALUES ('one')")
        with pytest.raises(duckdb.ConstraintException):
            con.execute("INSERT INTO datasets (name) VALUES ('one')")
        con.register("_t", pa.table({"a": [1, 2, 3]}))
        assert con.execute("SELECT sum(a) FROM _t").fetchall() == [(6,)]
        con.unregister("_t")
        with pytest.raises(duckdb.CatalogException):
            con.execute("SELECT * FROM _t")
        with pytest.raises(duckdb.Error, match="not the studio's own"):
            con.create_function("evil", os.system, ["VARCHAR"], "INTEGER")


def test_exact_dedup_runs_its_python_function_in_the_store_process(served, tmp_path):
    from curation.dedup import dedup

    store, _ = served
    data = tmp_path / "dups.jsonl"
    data.write_text("".join(json.dumps({"instruction": text, "output": "same"}) + "\n"
                            for text in ("Hello  World", "hello world", "HELLO WORLD ", "other")))
    import_file(store, data, "dups")
    result = dedup(store, "dups@v1", "exact")
    assert (result["n_rows"], result["n_flagged"]) == (4, 2)


def test_the_store_process_ends_with_its_parent(tmp_path):
    store = Store(tmp_path / "ws")
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    proc = store_client.start_server(store.workspace.root, parent=parent.pid)
    assert proc is not None
    parent.kill()
    parent.wait()
    assert proc.wait(30) == 0
    assert not store_client.server_running(store.workspace.root)
    assert _names(store) == []  # the file is free again for the file lock


def test_cli_store_status_and_serve(tmp_path):
    ws = tmp_path / "ws"
    studio = [str(REPO / ".venv" / "bin" / "studio"), "--workspace", str(ws)]

    def status() -> dict:
        out = subprocess.run([*studio, "store", "status", "--json"], capture_output=True,
                             text=True, check=True)
        return json.loads(out.stdout)

    assert status()["running"] is False
    serve = subprocess.Popen([*studio, "store", "serve", "--idle-exit", "3"],
                             stderr=subprocess.PIPE, text=True)
    assert "store process on" in serve.stderr.readline()
    got = status()
    assert got["running"] is True and got["pid"] == serve.pid
    second = subprocess.run([*studio, "store", "serve"], capture_output=True, text=True)
    assert second.returncode == 1 and "has a store process already" in second.stderr
    assert serve.wait(60) == 0  # idle for 3 s: it ends by itself
    assert status()["running"] is False


def test_a_store_process_refuses_a_second_one(served):
    from kernel.store_server import serve

    store, _ = served
    assert serve(store.workspace.root) == 3


# --- kill -9 during an import, with the store process (issue 14: fault injection) -----------

# The CLI, with a probe that prints "writing" as the import starts its one transaction in the
# store process (curation.importer._write_direct); behaviour unchanged otherwise.
_ANNOUNCED_CLI = """
from curation import importer
write = importer._write_direct
def announced(*args, **kwargs):
    print("writing", flush=True)
    return write(*args, **kwargs)
importer._write_direct = announced
from studio.cli import main
main()
"""


def _start_import(ws: Path, data: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _ANNOUNCED_CLI, "--workspace", str(ws),
                             "import", str(data), "--name", "big"],
                            cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _import_under_way(store: Store, tmp_path: Path) -> tuple[dict, subprocess.Popen]:
    """A 50-row dataset (what the user has: its snapshot), then a 600k-row CLI import inside
    its write transaction (about a second of inserts on a quiet machine)."""
    import_file(store, write_rows(tmp_path / "d.jsonl", 50), "d")
    before = snapshot(store)
    importer = _start_import(store.workspace.root, write_rows(tmp_path / "big.jsonl", 600_000))
    assert importer.stdout.readline().strip() == "writing", importer.communicate()
    time.sleep(0.1)
    assert importer.poll() is None, "the import ended before the kill"
    return before, importer


def test_store_process_killed_mid_import_leaves_the_store_as_it_was(served, tmp_path):
    store, proc = served
    ws = store.workspace.root
    before, importer = _import_under_way(store, tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    _, err = importer.communicate(timeout=180)
    lines = err.strip().splitlines()
    assert importer.returncode == 1 and len(lines) == 1, err
    assert lines[0].startswith("error: the store process") and "run it again" in lines[0]
    assert snapshot(store) == before  # through the file lock now
    assert store.query("SELECT count(*) AS n FROM row_data WHERE dataset = 'big'")[0]["n"] == 0
    studio(ws, "import", str(write_rows(tmp_path / "m.jsonl", 100)), "--name", "m", check=True)


def test_client_killed_mid_import_with_the_store_process_loses_nothing(served, tmp_path):
    store, proc = served
    ws = store.workspace.root
    before, importer = _import_under_way(store, tmp_path)
    importer.kill()
    importer.communicate()
    studio(ws, "datasets", check=True)  # any command: the next claim or open sweeps the dead
    import_file(store, write_rows(tmp_path / "m.jsonl", 10), "m")  # a claim sweeps the dead one
    assert proc.poll() is None  # the store process served on
    after = snapshot(store)
    assert {k: [r for r in v if r.get("dataset") != "m" and r.get("name") != "m"]
            for k, v in after.items()} == before
    assert store.query("SELECT count(*) AS n FROM row_data WHERE dataset = 'big'")[0]["n"] == 0


# --- a big write starts the store process itself (kernel.staging) ----------------------------

@pytest.mark.parametrize("setting", ["default", "0"])
def test_a_big_import_starts_the_store_process_unless_told_not_to(tmp_path, setting):
    from kernel.staging import BIG_WRITE_ROWS

    ws = tmp_path / "ws"
    env = dict(ENV)
    if setting == "0":
        env["STUDIO_STORE_PROCESS"] = "0"
    data = write_rows(tmp_path / "big.jsonl", 2 * BIG_WRITE_ROWS + 5)
    got = studio(ws, "import", str(data), "--name", "big", "--json", env=env)
    assert got.returncode == 0, got.stderr
    store = Store(ws)
    assert store_client.server_running(ws) is (setting == "default")
    assert store.query("SELECT n_rows FROM versions WHERE dataset = 'big'") == \
        [{"n_rows": 2 * BIG_WRITE_ROWS + 5}]
    assert store.query("SELECT count(*) AS n FROM rows WHERE dataset = 'big'")[0]["n"] == \
        2 * BIG_WRITE_ROWS + 5
    small = studio(ws, "import", str(write_rows(tmp_path / "s.jsonl", 10)), "--name", "s",
                   env=env)
    assert small.returncode == 0, small.stderr
    if setting == "default":
        with store.connect() as con:
            assert isinstance(con, RemoteConnection)
        os.kill(store_client.server_pid(ws), signal.SIGTERM)
        deadline = time.monotonic() + 30
        while store_client.server_running(ws) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not store_client.server_running(ws)


def test_with_the_store_process_a_score_is_one_transaction_inside_it(served, tmp_path,
                                                                      monkeypatch):
    """Scores and the new version's rows go in one transaction inside the store process
    (kernel.staging._write_in_one), never in chunked turns through its socket."""
    from curation.scoring import score
    from kernel import staging

    store, _ = served
    import_file(store, write_rows(tmp_path / "d.jsonl", 500), "d")
    monkeypatch.setattr(staging, "_in_turns", lambda *a, **k: pytest.fail("a chunked write"))
    got = score(store, "d")
    version = got["ref"].split("@")[1]
    assert store.query("SELECT n_rows FROM versions WHERE dataset = 'd' AND version = ?",
                       [version]) == [{"n_rows": 500}]
    assert store.query("SELECT count(DISTINCT uid) AS n, count(DISTINCT name) AS k FROM scores "
                       "WHERE dataset = 'd' AND version = ?", [version]) == \
        [{"n": 500, "k": len(got["scores"])}]
    assert not store.query("SELECT * FROM staged_writes")
