"""The one way into the workspace database.

DuckDB lets a single process hold a file read-write, and a writer locks out even readers in
other processes (../shared/notes/duckdb-concurrency.md). So nobody keeps the file open: every
operation takes a short-lived connection through `Store.connect()`, which waits and retries
while another process (the UI, the CLI, an ingesting job) holds the lock, and releases it as
soon as the block ends. Worker processes (training, generation) never open the database at all:
they write files in their run folder and whoever reads next ingests them.

Long computations (dedup, scoring, generation) must run *outside* a `connect()` block: read
what you need, close, compute, then write the result in one `transaction()`, or, when it is
big, in chunks through `write_staged` (kernel.staging) so no reader waits for all of it.
Waiters are served first come, first served (kernel.fairlock), not by luck of backoff.

While the workspace's store process runs (kernel.store_server: `studio ui` starts one,
`studio store serve` too), `connect()` goes through it instead (kernel.store_client): the same
API, but readers never wait for a writer and nobody pays for opening DuckDB.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import duckdb

from kernel import staging, store_client
from kernel.errors import StoreWriteError, StudioError, WorkspaceBusyError
from kernel.fairlock import FairQueue, QueueTimeout
from kernel.migrations import MIGRATIONS
from kernel.workspace import Workspace

DEFAULT_LOCK_TIMEOUT_S = 120.0
_migrated: set[Path] = set()
_migrate_lock = threading.Lock()


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc)
    return "Could not set lock" in text or "Conflicting lock" in text


class _ServerStarted(Exception):
    """The workspace's store process took the file while we waited for it."""


def _is_read(sql: str) -> bool:
    first = sql.lstrip(" \n\t(").split(None, 1)[0].lower() if sql.strip() else ""
    return first in ("select", "with", "from", "show", "describe", "summarize")


class Store:
    """Owns access to `<workspace>/studio.duckdb`; cheap to create, holds no connection."""

    def __init__(self, workspace: Workspace | str | Path | None = None,
                 lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S):
        self.workspace = workspace if isinstance(workspace, Workspace) else Workspace.open(workspace)
        self.lock_timeout_s = lock_timeout_s
        self._queue = FairQueue(self.workspace.root / "locks" / "store-queue")
        self._ensure_migrated()
        if store_client.auto_start():
            store_client.start_server(self.workspace.root,
                                      idle_exit_s=store_client.AUTO_IDLE_EXIT_S)

    @property
    def path(self) -> Path:
        return self.workspace.db_path

    @contextmanager
    def connect(self, timeout_s: float | None = None,
                read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection, after waiting our turn in the workspace's FIFO queue (at most
        `timeout_s`, default the store's `lock_timeout_s`). Read-write by default; with
        `read_only`, readers queued together share the file (DuckDB allows several read-only
        processes, never alongside a writer)."""
        timeout_s = self.lock_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        remote = store_client.open_remote(self.workspace.root, read_only, timeout_s)
        if remote is None:
            stack = ExitStack()
            try:
                shared = stack.enter_context(self._queue.turn(deadline, shared=read_only))
                con = stack.enter_context(self._open(deadline, timeout_s, shared))
            except _ServerStarted:
                stack.close()  # leave the queue: the store process has the file now
                remote = store_client.open_remote(self.workspace.root, read_only,
                                                  max(deadline - time.monotonic(), 1.0))
                if remote is None:
                    raise WorkspaceBusyError(f"workspace {self.workspace.root} is busy: its "
                                             "store process is starting or stopping") from None
            except QueueTimeout as exc:
                stack.close()
                raise WorkspaceBusyError(
                    f"workspace {self.workspace.root} is busy: waited {timeout_s:.0f}s for "
                    f"{self.path.name} ({exc})") from exc
            except BaseException:
                stack.close()
                raise
            else:
                with stack:
                    yield con
                return
        with self._mapped_errors(), remote:
            yield remote

    @contextmanager
    def _mapped_errors(self) -> Iterator[None]:
        """DuckDB and OS errors the user can fix become one-line StudioErrors (`user_error`)."""
        try:
            yield
        except (duckdb.Error, OSError) as exc:
            user = self.user_error(exc)
            if user is None:
                raise
            raise user from exc

    def others_waiting(self) -> bool:
        """Inside a connect() block: has another operation queued behind us? Never, with a
        store process: there readers do not wait for a writer's turn."""
        if store_client.server_running(self.workspace.root):
            return False
        return self._queue.others_waiting()

    @contextmanager
    def long_writer_turn(self, timeout_s: float | None = None) -> Iterator[None]:
        """Around one turn of a long chunked write (kernel.staging): one such writer at a time."""
        timeout_s = self.lock_timeout_s if timeout_s is None else timeout_s
        try:
            with self._queue.baton(time.monotonic() + timeout_s):
                yield
        except QueueTimeout as exc:
            raise WorkspaceBusyError(
                f"workspace {self.workspace.root} is busy: waited {timeout_s:.0f}s for "
                f"another long write ({exc})") from exc

    def read(self, timeout_s: float | None = None):
        """A read-only connection (shared with other readers); see `connect`."""
        return self.connect(timeout_s, read_only=True)

    @contextmanager
    def _open(self, deadline: float, timeout_s: float,
              read_only: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open the file, retrying while a process outside the queue (a raw duckdb) holds it."""
        delay = 0.01
        while True:
            try:
                con = duckdb.connect(str(self.path), read_only=read_only)
                break
            except duckdb.Error as exc:
                if not _is_lock_error(exc):
                    user = self.user_error(exc)
                    if user is None:
                        raise
                    raise user from exc
                if store_client.server_running(self.workspace.root):
                    raise _ServerStarted from exc
                if time.monotonic() >= deadline:
                    raise WorkspaceBusyError(
                        f"workspace {self.workspace.root} is busy: another process has held "
                        f"{self.path.name} for over {timeout_s:.0f}s ({exc})"
                    ) from exc
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 0.1)
        try:
            with self._mapped_errors():
                con.execute("SET enable_progress_bar = false")  # it would print into CLI output
                yield con
        finally:
            con.close()

    def user_error(self, exc: BaseException) -> StudioError | None:
        """A one-line StudioError for what the user can fix (full disk, rights, a corrupt
        file), or None for what is a bug and keeps its traceback."""
        text = str(exc)
        first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        errno_ = getattr(exc, "errno", None)
        if errno_ == 28 or "No space left on device" in text or "disk is full" in text.lower():
            return StoreWriteError(
                f"workspace {self.workspace.root}: the disk is full; the write was not done "
                f"and the store is as it was (free some space and retry)")
        if errno_ in (1, 13, 30) or "Read-only file system" in text or "Permission denied" in text:
            return StoreWriteError(f"workspace {self.workspace.root}: cannot write: {first}")
        if "not a valid DuckDB database" in text or "Corrupt database" in text \
                or "corrupt" in text.lower() and isinstance(exc, duckdb.Error):
            return StudioError(f"workspace database {self.path} is damaged or not a DuckDB "
                               f"file: {first} (restore it from a backup, or move it away to "
                               f"start an empty workspace)")
        return None

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection inside BEGIN/COMMIT; any exception rolls everything back."""
        with self.connect() as con, staging.transaction(con):
            yield con

    def query(self, sql: str, params: list | tuple | None = None) -> list[dict]:
        """Run one parameterized query and return rows as dicts (small results only).
        A SELECT runs on a shared read-only connection."""
        with self.connect(read_only=_is_read(sql)) as con:
            cur = con.execute(sql, params or [])
            cols = [d[0] for d in cur.description] if cur.description else []
            return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]

    def give_back_space(self) -> None:
        """After a failed big write: a checkpoint truncates the free blocks at the end of the
        file, so a rolled-back import (e.g. on a full disk) leaves the file about as it was.
        Best effort: if this fails too, the workspace is still consistent."""
        import contextlib

        with contextlib.suppress(StudioError, duckdb.Error), self.connect() as con:
            con.execute("CHECKPOINT")

    def model_folder(self, name: str) -> Path | None:
        """The folder of an imported base model (`studio model import`, table `models`), or
        None when `name` is not one. Here, beside the store, because curation (model scores),
        training and evals all accept a model name where a path is asked for."""
        rows = self.query("SELECT path FROM models WHERE name = ?", [name])
        return (self.workspace.root / rows[0]["path"]).resolve() if rows else None

    def query_df(self, sql: str, params: list | tuple | None = None):
        with self.connect(read_only=_is_read(sql)) as con:
            return con.execute(sql, params or []).df()

    # --- big writes in short steps (see kernel.staging) -----------------------------------
    def claim(self, dataset: str, version: str | None, new_dataset: bool = False):
        return staging.claim(self, dataset, version, new_dataset)

    def write_staged(self, claim, target, data, params=None) -> int:
        """Append `data` (Arrow table or Parquet) to `target` in short chunks under `claim`."""
        return staging.write_staged(self, claim, target, data, params)

    def commit_staged(self, claim):
        return staging.commit_staged(self, claim)

    def abandon_staged(self, claim) -> None:
        staging.abandon_staged(self, claim)

    def stage_dir(self):
        return staging.stage_dir(self)

    def applied_migrations(self) -> list[str]:
        return [r["name"] for r in self.query("SELECT name FROM _migrations ORDER BY applied_at, name")]

    def _ensure_migrated(self) -> None:
        with _migrate_lock:
            if self.path in _migrated and self.path.exists():
                return
            with self.connect() as con:
                con.execute(
                    "CREATE TABLE IF NOT EXISTS _migrations ("
                    " name TEXT PRIMARY KEY, applied_at TIMESTAMP DEFAULT current_timestamp)"
                )
                done = {r[0] for r in con.execute("SELECT name FROM _migrations").fetchall()}
                for name, apply in MIGRATIONS:
                    if name in done:
                        continue
                    con.execute("BEGIN TRANSACTION")
                    try:
                        apply(con)
                        con.execute("INSERT INTO _migrations (name) VALUES (?)", [name])
                    except BaseException:
                        con.execute("ROLLBACK")
                        raise
                    con.execute("COMMIT")
                con.execute("BEGIN TRANSACTION")
                staging.sweep(con)  # what writers that died had staged
                con.execute("COMMIT")
            _migrated.add(self.path)
