"""Long chunked writes take turns (kernel.staging, issue 14 item 5): one long writer at a time
holds the baton, a writer killed with -9 frees it, turns are sized from the last one's speed,
and a reader that queues gets in before a long write is done."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pyarrow as pa
import pytest

from kernel import staging
from kernel.errors import WorkspaceBusyError
from kernel.store import Store


def _hold_baton(workspace) -> subprocess.Popen:
    code = textwrap.dedent(f"""
        import time
        from kernel.store import Store
        from kernel.workspace import Workspace
        s = Store(Workspace.open({str(workspace.root)!r}))
        with s.long_writer_turn():
            print("held", flush=True)
            time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_long_writer_waits_and_a_killed_holder_frees_the_baton(workspace):
    store = Store(workspace)
    holder = _hold_baton(workspace)
    try:
        t0 = time.monotonic()
        with pytest.raises(WorkspaceBusyError, match="another long write"), \
                store.long_writer_turn(timeout_s=0.5):
            pass
        assert time.monotonic() - t0 >= 0.5
        with store.read() as con:  # readers never wait for the baton
            assert con.execute("SELECT count(*) FROM datasets").fetchone()[0] == 0
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    t0 = time.monotonic()
    with store.long_writer_turn(timeout_s=5):
        assert time.monotonic() - t0 < 1.0


def test_turn_size_follows_the_last_turns_speed():
    assert staging._turn_size(10_000, 0.050) == 20_000  # at most twice the last turn
    assert staging._turn_size(10_000, 0.200) == 5_000   # 0.1 s of work at that speed
    assert staging._turn_size(10, 0.5) == staging.MIN_ROWS
    assert staging._turn_size(10**6, 0.001) == staging.MAX_ROWS


def test_a_reader_that_queues_gets_in_mid_write_and_all_rows_land(store, workspace):
    """A writer alone keeps the file; once a reader (another process) queues, the writer ends
    its turn after the current chunk, and the reader gets in before the write is done."""
    rows = staging.MIN_ROWS * 60
    table = pa.table({"dataset": ["ds"] * rows, "version": ["v1"] * rows,
                      "uid": [f"u{i}" for i in range(rows)], "split": ["train"] * rows,
                      "is_dup": [False] * rows, "rid": list(range(rows))})
    chunks = staging._chunks(table.to_batches(max_chunksize=staging.MIN_ROWS))

    started = workspace.root / "writer-started"
    taken = []

    def slow_chunks(size):  # ~20 ms per chunk: the write lasts long enough to be joined
        time.sleep(0.02)
        taken.append(size)
        if len(taken) == 3:  # two chunks are in: let the reader queue now
            started.write_text("")
        return chunks(min(size, staging.MIN_ROWS))

    reader = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import os, time
        from kernel.store import Store
        from kernel.workspace import Workspace
        s = Store(Workspace.open({str(workspace.root)!r}))
        print("ready", flush=True)
        while not os.path.exists({str(started)!r}):
            time.sleep(0.005)
        with s.read() as con:
            print(con.execute("SELECT count(*) FROM version_rows WHERE dataset = 'ds'"
                              ).fetchone()[0], flush=True)
    """)], stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert reader.stdout.readline().strip() == "ready"
    claim = store.claim("ds", "v1", new_dataset=True)
    n = store.write_staged(claim, "version_rows", slow_chunks)
    out = reader.stdout.readline()
    reader.wait(timeout=120)
    assert n == rows
    assert 0 < int(out) < rows, out  # the reader got in mid-write
    with store.read() as con:
        assert con.execute("SELECT count(*) FROM version_rows").fetchone()[0] == rows
    store.abandon_staged(claim)
