"""The store: migrations are recorded, and two real processes share a workspace without lock errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from kernel.store import Store


def test_migrations_are_recorded_once(workspace):
    store = Store(workspace)
    names = store.applied_migrations()
    assert names[0].startswith("0001")
    assert len(names) == len(set(names))
    Store(workspace)  # opening again applies nothing new
    assert store.applied_migrations() == names


def test_transaction_rolls_back_on_error(store):
    try:
        with store.transaction() as con:
            con.execute("INSERT INTO datasets (name) VALUES ('x')")
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert store.query("SELECT count(*) AS n FROM datasets")[0]["n"] == 0


def test_other_process_waits_for_lock_instead_of_failing(workspace, tmp_path):
    """Process B writes while process A holds the file for 1.5 s: B must wait, then succeed."""
    store = Store(workspace)
    holder = textwrap.dedent(f"""
        import time, duckdb, sys
        con = duckdb.connect({str(store.path)!r})
        con.execute("INSERT INTO datasets (name) VALUES ('from_a')")
        print("locked", flush=True)
        time.sleep(1.5)
        con.close()
    """)
    writer = textwrap.dedent(f"""
        from kernel.store import Store
        from kernel.workspace import Workspace
        s = Store(Workspace.open({str(workspace.root)!r}))
        with s.transaction() as con:
            con.execute("INSERT INTO datasets (name) VALUES ('from_b')")
        print("ok")
    """)
    a = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    assert a.stdout.readline().strip() == "locked"
    b = subprocess.run([sys.executable, "-c", writer], capture_output=True, text=True, timeout=60)
    a.wait(timeout=30)
    assert b.returncode == 0, b.stderr
    names = {r["name"] for r in store.query("SELECT name FROM datasets")}
    assert names == {"from_a", "from_b"}
