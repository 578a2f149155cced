"""Import writes through the store's short-step path (issue 14 items 5 and 6): it computes with
no store lock held, writes its rows in chunks that stay invisible until one publishing
transaction, and a failure after rows were written leaves the store as before."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from curation.datasets import load_rows
from curation.importer import import_file
from kernel.errors import NotFoundError
from kernel.store import Store

N = 30_000


def write_rows(path: Path, n: int) -> Path:
    with path.open("w") as fh:
        for i in range(n):
            fh.write(json.dumps({"instruction": f"task {i}", "output": f"answer {i} " * (i % 7)})
                     + "\n")
    return path


def other_process_can_write(store: Store) -> bool:
    """True when a separate process can open the file read-write right now (nobody holds it)."""
    code = ("import duckdb, sys; con = duckdb.connect(sys.argv[1]); "
            "con.execute('SELECT count(*) FROM datasets').fetchall(); con.close()")
    got = subprocess.run([sys.executable, "-c", code, str(store.path)], capture_output=True,
                         text=True, timeout=120)
    return got.returncode == 0


def counts(store: Store) -> dict:
    return {t: store.query(f"SELECT count(*) AS n FROM {t}")[0]["n"]
            for t in ("datasets", "rows", "versions", "version_rows", "staged_writes")}


def test_import_computes_without_the_lock_and_publishes_in_one_step(store, tmp_path):
    import_file(store, write_rows(tmp_path / "first.jsonl", 50), "first")
    seen = {}

    def progress(done, total):
        if done == 1:  # the source is read and normalized, nothing written yet
            seen["free_while_computing"] = other_process_can_write(store)
        if done == 2:  # every row is written, the dataset not yet published
            seen["rows_written"] = store.query(
                "SELECT count(*) AS n FROM rows WHERE dataset = 'big'")[0]["n"]
            seen["datasets"] = [r["name"] for r in store.query("SELECT name FROM datasets")]
            with pytest.raises(NotFoundError):
                load_rows(store, "big")

    got = import_file(store, write_rows(tmp_path / "big.jsonl", N), "big", progress=progress)
    assert seen == {"free_while_computing": True, "rows_written": N, "datasets": ["first"]}
    assert got["n_rows"] == N and len(load_rows(store, "big")) == N
    # chunks keep source order and never reuse a row key
    keys = store.query("SELECT r.source_line, r.rid, vr.rid AS vrid FROM version_rows vr JOIN rows r "
                       "ON r.uid = vr.uid WHERE vr.dataset = 'big' ORDER BY r.rid")
    assert [k["source_line"] for k in keys] == list(range(1, N + 1))
    assert all(k["rid"] == k["vrid"] for k in keys)
    first_max = store.query("SELECT max(rid) AS m FROM rows WHERE dataset = 'first'")[0]["m"]
    assert keys[0]["rid"] > first_max
    assert counts(store)["staged_writes"] == 0


def test_failure_after_rows_were_written_leaves_the_store_as_before(store, tmp_path):
    import_file(store, write_rows(tmp_path / "first.jsonl", 50), "first")
    before = counts(store)

    def progress(done, total):
        if done == 2:
            assert store.query("SELECT count(*) AS n FROM rows WHERE dataset = 'big'"
                               )[0]["n"] == N
            raise RuntimeError("the import fails after writing every chunk")

    with pytest.raises(RuntimeError, match="after writing"):
        import_file(store, write_rows(tmp_path / "big.jsonl", N), "big", progress=progress)
    assert counts(store) == before
    # the name is free again (the file size: see the full-disk test in test_faults.py)
    assert import_file(store, write_rows(tmp_path / "small.jsonl", 10), "big")["n_rows"] == 10
