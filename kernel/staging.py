"""Big writes in short steps: the store is never held for the length of an import or a score.

Why: DuckDB's file lock is exclusive, so one 1M-row INSERT (seconds to a minute) makes every
reader wait for all of it. Instead the heavy work runs on a private in-memory DuckDB or in
files under `<workspace>/staging/`, and the result is appended in chunks, each in its own short
connection through the store's FIFO queue, so readers get in between chunks (with the store
process running, Parquet and version copies go in one transaction inside it instead: its readers
never wait for a writer, `in_store_process`):

    claim = store.claim(dataset, version)            # reserves the name, invisible to readers
    try:
        store.write_staged("scores", "scores.parquet", claim)   # chunked appends
        with store.commit_staged(claim) as con:      # one short transaction makes it visible
            con.execute("INSERT INTO versions ...")
    except BaseException:
        store.abandon_staged(claim)
        raise

Staged rows are invisible until the commit because every read goes through `versions` (and
`datasets`): version_rows and scores of a version that has no `versions` row, and rows of a
dataset that has no `datasets` row, are never shown. A claim records the writer's pid; when the
writer dies (kill -9, full disk, power) the next claim or store open deletes what it staged.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb

from kernel import store_client
from kernel.errors import StudioError
from kernel.processes import pid_alive, process_start

CHUNK_ROWS = 20_000    # rows per chunked read (scoring's copy of the text)
TARGET_WORK_S = 0.1   # with others queued, a writer's chunk takes about this (plus open, close)
MIN_ROWS = 1_000
MAX_ROWS = 122_880  # one DuckDB row group: alone, a chunk is exactly one (see _in_turns)
BIG_WRITE_ROWS = MAX_ROWS  # past this, a write starts the store process (see _in_turns)
LOW_DISK_BYTES = 1 << 30  # less free space than this: chunks start small (see write_staged)
STAGING_DIR = "staging"


@dataclass(frozen=True)
class Claim:
    """A reserved (dataset, version) that staged writes fill before one commit shows it."""
    token: str
    dataset: str
    version: str
    new_dataset: bool


def claim(store, dataset: str, version: str | None, new_dataset: bool = False) -> Claim:
    """Reserve `dataset@version` (version None: the next free vN) for a staged write."""
    from kernel.version_names import check_name, taken_versions

    token = secrets.token_hex(8)
    with store.transaction() as con:
        sweep(con)
        if new_dataset:
            check_new_dataset(con, dataset)
        elif not con.execute("SELECT 1 FROM datasets WHERE name = ?", [dataset]).fetchone():
            raise StudioError(f"dataset {dataset!r} does not exist")
        taken = taken_versions(con, dataset)
        if version is None:
            nums = [int(v[1:]) for v in taken if v[:1] == "v" and v[1:].isdigit()]
            version = f"v{max(nums, default=0) + 1}"
        check_name(version)
        if version in taken:
            raise StudioError(f"version {dataset}@{version} already exists; pick another --out name")
        con.execute("INSERT INTO staged_writes (token, dataset, version, new_dataset, pid, "
                    "pid_start) VALUES (?, ?, ?, ?, ?, ?)",
                    [token, dataset, version, new_dataset, os.getpid(), process_start(os.getpid())])
    return Claim(token, dataset, version, new_dataset)


def check_new_dataset(con, dataset: str) -> None:
    """A new dataset's name must be free: not a dataset, and not being imported."""
    if con.execute("SELECT 1 FROM datasets WHERE name = ?", [dataset]).fetchone():
        raise StudioError(f"dataset {dataset!r} already exists; pick another --name")
    if con.execute("SELECT 1 FROM staged_writes WHERE dataset = ?", [dataset]).fetchone():
        raise StudioError(f"dataset {dataset!r} is being imported by another process; "
                          "pick another --name")


def write_staged(store, claim: Claim, target: str | list, data,
                 params: list | None = None) -> int:
    """Append `data` (a pyarrow Table or RecordBatchReader, a Parquet file or a glob of them,
    or a function giving the next chunk of about the size asked as a Table, None at the end)
    in chunks, each in its own short transaction, in turns (see `_in_turns`); returns the
    number of rows. Parquet goes in one transaction inside the store process instead when it
    runs or this write is big enough to start it (`in_store_process`).

    `target` is a table name (columns matched by name) or a list of SQL statements that read
    the chunk as `_chunk`, each run with `params` (or given as `(sql, its_params)`). Between
    turns other processes get in; the next chunk is read (a reader may compute it) while
    this writer is between turns or holds the store alone."""
    import pyarrow as pa
    import pyarrow.dataset as pads

    statements = ([f"INSERT INTO {_ident(target)} BY NAME SELECT * FROM _chunk"]
                  if isinstance(target, str) else list(target))
    statements = [s if isinstance(s, tuple) else (s, params or []) for s in statements]
    if callable(data):
        chunks = data
    elif isinstance(data, pa.Table):
        chunks = _chunks(data.to_batches(max_chunksize=MIN_ROWS))
    elif isinstance(data, pa.RecordBatchReader):
        chunks = _chunks(data)
    else:
        files = sorted(Path(data).parent.glob(Path(data).name)) if "*" in str(data) else [data]
        parquet = pads.dataset([str(f) for f in files], format="parquet")
        if in_store_process(store, lambda: parquet.count_rows() >= BIG_WRITE_ROWS):
            return _write_in_one(store, claim, statements, files)
        chunks = _chunks(parquet.to_batches(batch_size=MIN_ROWS))
    # Near a full disk, chunks start small and double, as a whole row group is written
    # straight into the database file: if the disk fills there, the file has grown and the
    # rollback cannot give the space back, while a small chunk fails in the write-ahead log
    # and leaves the file as it was (tests/test_faults.py, full disk).
    tight = shutil.disk_usage(store.path.parent).free < LOW_DISK_BYTES

    def write(con, chunk) -> int:
        if tight:
            _keep_room(store, chunk.nbytes)
        with transaction(con):
            _check_claim(con, claim)
            con.register("_chunk", chunk)
            for sql, args in statements:
                con.execute(sql, args)
            con.unregister("_chunk")
        return chunk.num_rows

    return _in_turns(store, chunks, write, tight)


def in_store_process(store, big, room_bytes: int = 0) -> bool:
    """Write in one transaction inside the store process? When it runs, or when `big()` says
    this write is big enough to start it; never with less than LOW_DISK_BYTES (or
    `room_bytes`) free: a transaction that fills the disk grows the file for good, while the
    chunked path starts small there (see write_staged)."""
    root = store.workspace.root
    if shutil.disk_usage(store.path.parent).free < max(LOW_DISK_BYTES, room_bytes):
        return False
    if not store_client.server_running(root) and store_client.auto_start_allowed() and big():
        store_client.start_server(root, idle_exit_s=store_client.AUTO_IDLE_EXIT_S)
    return store_client.server_running(root)


@contextlib.contextmanager
def transaction(con) -> Iterator:
    """BEGIN on `con`, COMMIT at the end, ROLLBACK on any exception."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def _write_in_one(store, claim: Claim, statements: list, files: list) -> int:
    """The statements in one transaction inside the store process, `_chunk` a view over the
    Parquet files there: no row crosses its socket, and its readers read on meanwhile
    (DuckDB's MVCC), so the turns that let readers in between chunks are not needed."""
    paths = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
    with store.connect() as con:
        con.execute(f"CREATE OR REPLACE TEMP VIEW _chunk AS SELECT * FROM read_parquet([{paths}])")
        n = con.execute("SELECT count(*) FROM _chunk").fetchone()[0]
        with transaction(con):
            _check_claim(con, claim)
            for sql, args in statements:
                con.execute(sql, args)
    return n


def _in_turns(store, prepare, write, tight: bool = False) -> int:
    """Write `prepare(size)` (the next chunk of about `size` rows, None at the end) with
    `write(con, chunk)` (one transaction; returns its rows) until the end, in turns.

    While nobody waits, a turn keeps the file and each chunk fills up to the next whole row
    group of what this write has written: DuckDB writes whole row groups of a transaction
    straight into the file, while a partial one goes through its write-ahead log and is
    written twice (measured on 1M rows, AMD EPYC, 2 cores: 131,072-row chunks cost 4.9 s more
    than 122,880-row ones; 10k-row chunks 2x one insert). Once someone queues behind it, the
    turn ends after the current chunk, the next chunk is sized from the last turn's speed
    (`_turn_size`) and prepared off the store, and from then on chunks double from there.
    Near a full disk (`tight`) they double from small. Each turn holds the long-writer
    baton: a reader waits for at most one writer turn, not an import's and a score's back to
    back. (Measured and dropped: pausing after each turn, and sizing turns by their open and
    close too; both made a 20k-row score 3x slower under constant reads for no clear gain in
    reader waits: see the README's store section.)"""
    doubling = tight or store.others_waiting()
    n, size = 0, MIN_ROWS if doubling else MAX_ROWS
    serve = store_client.auto_start_allowed() and not store_client.server_running(
        store.workspace.root)
    chunk = prepare(size)
    while chunk is not None:
        if serve and n >= BIG_WRITE_ROWS:  # a big write: no reader shall wait for the rest
            serve = False
            if store_client.start_server(store.workspace.root,
                                         idle_exit_s=store_client.AUTO_IDLE_EXIT_S):
                doubling, size = False, MAX_ROWS - n % MAX_ROWS
        with store.long_writer_turn():
            waiting, rows, work = False, 0, 0.0
            with store.connect() as con:  # keeps the file while nobody else waits
                while chunk is not None:
                    t0 = time.monotonic()
                    rows += write(con, chunk)
                    work += time.monotonic() - t0
                    waiting = store.others_waiting()
                    if waiting or serve and n + rows >= BIG_WRITE_ROWS:
                        break
                    size = (min(MAX_ROWS, size * 2) if doubling
                            else MAX_ROWS - (n + rows) % MAX_ROWS)
                    chunk = prepare(size)
        n += rows
        if waiting:
            doubling = True
            size = _turn_size(rows, work)
            chunk = prepare(size)
        elif chunk is not None:  # ended to start the store process: the next whole row group
            size = MAX_ROWS - n % MAX_ROWS
            chunk = prepare(size)
    return n


def _keep_room(store, chunk_bytes: int) -> None:
    """Near a full disk: stop (as a full disk does) before a chunk could fill it. When DuckDB
    itself hits the full disk, the chunks already committed sit in its write-ahead log and
    deleting them needs room too: with none left, every later command failed."""
    if shutil.disk_usage(store.path.parent).free < 2 * chunk_bytes + (1 << 20):
        raise store.user_error(OSError(28, "No space left on device"))


def _chunks(batches):
    """A function giving the next `size` rows of `batches` as one Arrow table (None at the
    end); a batch bigger than what is asked for is split."""
    import pyarrow as pa

    it = iter(batches)
    state = {"pending": [], "rows": 0, "done": False}

    def take(size: int):
        while state["rows"] < size and not state["done"]:
            batch = next(it, None)
            if batch is None:
                state["done"] = True
            elif batch.num_rows:
                state["pending"].append(batch)
                state["rows"] += batch.num_rows
        if not state["rows"]:
            return None
        table = pa.Table.from_batches(state["pending"])
        rest = table.slice(size)
        state["pending"] = rest.to_batches() if rest.num_rows else []
        state["rows"] = rest.num_rows
        return table.slice(0, size)

    return take


def _turn_size(rows: int, work: float) -> int:
    """Rows for the next turn once others wait: about TARGET_WORK_S of writing at the speed of
    the last turn (`rows` in `work` seconds), at most twice as many rows."""
    wanted = rows * TARGET_WORK_S / max(work, 1e-3)
    return int(min(MAX_ROWS, max(MIN_ROWS, min(wanted, 2 * rows))))


def copy_version_rows(store, claim: Claim, parent: str) -> int:
    """The claimed version gets the parent's rows and flags, in chunks by row key (rid), or
    in one transaction inside the store process (see in_store_process)."""
    with store.read() as con:
        lo, hi, n = con.execute("SELECT min(rid), max(rid), count(*) FROM version_rows "
                                "WHERE dataset = ? AND version = ?",
                                [claim.dataset, parent]).fetchone()
    if lo is None:
        return 0
    if in_store_process(store, lambda: n >= BIG_WRITE_ROWS):
        with store.transaction() as con:
            _check_claim(con, claim)
            return con.execute(
                "INSERT INTO version_rows (dataset, version, uid, split, dup_cluster, is_dup, "
                "rid) SELECT ?, ?, uid, split, dup_cluster, is_dup, rid FROM version_rows "
                "WHERE dataset = ? AND version = ? ORDER BY rid",
                [claim.dataset, claim.version, claim.dataset, parent]).fetchone()[0]
    state = {"start": lo}

    def prepare(size: int):
        start = state["start"]
        if start > hi:
            return None
        state["start"] = start + size
        return start, start + size

    def write(con, rids) -> int:
        with transaction(con):
            _check_claim(con, claim)
            return con.execute(
                "INSERT INTO version_rows (dataset, version, uid, split, dup_cluster, is_dup, "
                "rid) SELECT ?, ?, uid, split, dup_cluster, is_dup, rid FROM version_rows "
                "WHERE dataset = ? AND version = ? AND rid >= ? AND rid < ? ORDER BY rid",
                [claim.dataset, claim.version, claim.dataset, parent, *rids]).fetchone()[0]

    return _in_turns(store, prepare, write)


@contextlib.contextmanager
def commit_staged(store, claim: Claim) -> Iterator[duckdb.DuckDBPyConnection]:
    """The short transaction that makes the staged data visible (the caller inserts the
    `versions` / `datasets` rows in it); the claim ends with it."""
    with store.transaction() as con:
        _check_claim(con, claim)
        con.execute("DELETE FROM staged_writes WHERE token = ?", [claim.token])
        yield con


def abandon_staged(store, claim: Claim) -> None:
    """Delete what the claim staged (best effort: if this fails too, the next sweep does it)."""
    with contextlib.suppress(StudioError, duckdb.Error), store.transaction() as con:
        _delete(con, claim.dataset, claim.version, claim.new_dataset)
        con.execute("DELETE FROM staged_writes WHERE token = ?", [claim.token])
    # Give the space back: a checkpoint writes the deletions and truncates free blocks at the
    # end of the file (DuckDB cannot shrink it further without a full copy).
    with contextlib.suppress(StudioError, duckdb.Error), store.connect() as con:
        con.execute("CHECKPOINT")


def sweep(con: duckdb.DuckDBPyConnection) -> int:
    """Delete the staged data of writers that died; returns how many claims were swept."""
    dead = [r for r in con.execute("SELECT token, dataset, version, new_dataset, pid, pid_start "
                                   "FROM staged_writes").fetchall() if not pid_alive(r[4], r[5])]
    for token, dataset, version, new_dataset, _, _ in dead:
        _delete(con, dataset, version, new_dataset)
        con.execute("DELETE FROM staged_writes WHERE token = ?", [token])
    return len(dead)


def _delete(con, dataset: str, version: str, new_dataset: bool) -> None:
    # Only data no committed version or dataset owns: never what a user already has.
    if con.execute("SELECT 1 FROM versions WHERE dataset = ? AND version = ?",
                   [dataset, version]).fetchone():
        return
    con.execute("DELETE FROM version_rows WHERE dataset = ? AND version = ?", [dataset, version])
    con.execute("DELETE FROM scores WHERE dataset = ? AND version = ?", [dataset, version])
    if new_dataset and not con.execute("SELECT 1 FROM datasets WHERE name = ?",
                                       [dataset]).fetchone():
        con.execute("DELETE FROM row_data WHERE dataset = ?", [dataset])


def _check_claim(con, claim: Claim) -> None:
    if not con.execute("SELECT 1 FROM staged_writes WHERE token = ?", [claim.token]).fetchall():
        raise StudioError(f"{claim.dataset}@{claim.version}: the staged write was cancelled "
                          "(its claim is gone)")


def _ident(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a table name: {name!r}")
    return name


@contextlib.contextmanager
def stage_dir(store) -> Iterator[Path]:
    """A fresh folder under `<workspace>/staging/` for intermediate files, removed at the end;
    folders left by dead processes are removed on the way."""
    root = store.workspace.root / STAGING_DIR
    root.mkdir(parents=True, exist_ok=True)
    for old in root.iterdir():
        pid = old.name.split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    folder = root / f"{os.getpid()}-{secrets.token_hex(4)}"
    folder.mkdir()
    try:
        yield folder
    except (OSError, duckdb.Error) as exc:  # e.g. the staged files filled the disk
        user = store.user_error(exc)
        if user is None:
            raise
        raise user from exc
    finally:
        shutil.rmtree(folder, ignore_errors=True)
