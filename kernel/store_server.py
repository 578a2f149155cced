"""The store process: one process holds `studio.duckdb` open and runs every client's
statements on that client's own cursor (issue 14, docs/store-process.md).

Why: with the file lock every read starts a DuckDB instance (~25 ms of CPU, far more on a
loaded machine) and waits while a writer holds the file. Inside one process DuckDB's MVCC lets
reads run while a write transaction is open, so no reader waits for an import or a score.
Writers still go one at a time (a FIFO lock held for a write connection's whole block), as
they did through the file lock, so two writes never conflict.

    python -m kernel.store_server --workspace W [--parent PID] [--idle-exit S]

`studio ui` starts one beside the UI (ending with it); `studio store serve` starts one by hand.
While it runs, every `Store` of that workspace, in any process, goes through it
(kernel.store_client); without it they take the file lock as before. A client killed mid-write
closes its socket and its transaction rolls back; a killed server loses only uncommitted work.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import importlib
import os
import signal
import socket
import socketserver
import sys
import threading
import time
from collections import deque
from pathlib import Path

import duckdb

from kernel import store_wire as wire
from kernel.processes import pid_alive

_UDF_PACKAGES = ("curation.", "evals.", "training.", "kernel.")  # create_function by name


class FifoLock:
    """Writers in arrival order; a waiter gives up at its deadline."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._queue: deque = deque()
        self._held = False

    def acquire(self, timeout_s: float) -> bool:
        me = object()
        deadline = time.monotonic() + timeout_s
        with self._cv:
            self._queue.append(me)
            while self._held or self._queue[0] is not me:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._queue.remove(me)
                    self._cv.notify_all()
                    return False
                self._cv.wait(left)
            self._queue.popleft()
            self._held = True
            return True

    def release(self) -> None:
        with self._cv:
            self._held = False
            self._cv.notify_all()


class _Handler(socketserver.BaseRequestHandler):
    """One client connection = one cursor (its own transaction), served until it closes."""

    def handle(self) -> None:
        server: StoreServer = self.server  # type: ignore[assignment]
        first = wire.recv(self.request)
        if first is None or first[0].get("op") != "hello":
            return
        writer = not first[0].get("read_only", False)
        if writer and not server.writers.acquire(float(first[0].get("timeout_s", 120.0))):
            wire.send(self.request, {"error": {"type": "Busy", "message":
                                               "another write held the store past the timeout"}})
            return
        cur = server.db.cursor()
        server.enter(self.request, cur)
        try:
            wire.send(self.request, {"ok": True})
            while (msg := wire.recv(self.request)) is not None:
                try:
                    header, payload = self.run(cur, *msg)
                except Exception as exc:  # noqa: BLE001 - the client re-raises it as it was
                    header, payload = {"error": {"type": type(exc).__name__,
                                                 "message": str(exc)}}, b""
                wire.send(self.request, header, payload)
        finally:
            with contextlib.suppress(duckdb.Error):
                cur.execute("ROLLBACK")  # what the client left open (it died) is not kept
            cur.close()
            server.leave(self.request)
            if writer:
                server.writers.release()

    def run(self, cur, header: dict, payload: bytes) -> tuple[dict, bytes]:
        op = header["op"]
        if op == "execute":
            cur.execute(header["sql"], wire.decode(header.get("params")) or [])
            desc = [[d[0], str(d[1])] for d in cur.description] if cur.description else None
            return {"description": desc}, b""
        if op == "executemany":
            cur.executemany(header["sql"], wire.decode(header["rows"]))
            return {"description": None}, b""
        if op == "fetch":
            how = header["how"]
            if how == "fetchone":
                return {"value": wire.encode(cur.fetchone())}, b""
            if how == "fetchmany":
                return {"value": wire.encode(cur.fetchmany(int(header["size"])))}, b""
            if how == "fetchall":
                return {"value": wire.encode(cur.fetchall())}, b""
            if how == "arrow":
                return {}, wire.arrow_bytes(cur.to_arrow_table())
            raise ValueError(f"unknown fetch {how!r}")
        if op == "register":
            cur.register(header["name"], wire.arrow_table(payload))
            return {}, b""
        if op == "unregister":
            cur.unregister(header["name"])
            return {}, b""
        if op == "create_function":
            self.server.create_function(cur, header)  # type: ignore[attr-defined]
            return {}, b""
        raise ValueError(f"unknown store operation {op!r}")


class StoreServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, path: Path, db: duckdb.DuckDBPyConnection) -> None:
        self.db = db
        self.writers = FifoLock()
        self.last_active = time.monotonic()
        self._count = threading.Lock()
        self._sockets: dict = {}  # client socket -> its cursor
        self._udfs: dict[str, str] = {}
        super().__init__(str(path), _Handler)

    @property
    def clients(self) -> int:
        return len(self._sockets)

    def enter(self, sock, cur) -> None:
        with self._count:
            self._sockets[sock] = cur

    def leave(self, sock) -> None:
        with self._count:
            self._sockets.pop(sock, None)
            self.last_active = time.monotonic()

    def drop_clients(self, wait_s: float = 10.0) -> None:
        """On shutdown: end every client's connection (their open transactions roll back) and
        wait for their cursors to close, as DuckDB refuses to close a database in use."""
        with self._count:
            for sock, cur in list(self._sockets.items()):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(duckdb.Error):
                    cur.interrupt()  # a long statement stops and rolls back
        deadline = time.monotonic() + wait_s
        while self.clients and time.monotonic() < deadline:
            time.sleep(0.02)

    def create_function(self, cur, header: dict) -> None:
        """A Python UDF named by `module:function` (no code travels); registered once, as
        DuckDB's functions belong to the database, not to a cursor."""
        name, ref = header["name"], header["ref"]
        with self._count:
            if self._udfs.get(name) == ref:
                return
            module, _, attr = ref.partition(":")
            if not module.startswith(_UDF_PACKAGES):
                raise ValueError(f"function {ref!r} is not the studio's own")
            fn = getattr(importlib.import_module(module), attr)
            cur.create_function(name, fn, header["parameters"], header["return_type"],
                                **header.get("options", {}))
            self._udfs[name] = ref


def serve(root: Path, parent: int | None = None, idle_exit_s: float | None = None,
          ready=None) -> int:
    """Serve workspace `root` until told to stop (SIGTERM/SIGINT), its parent process ends,
    or nobody has used it for `idle_exit_s`. Returns 0, or 3 if another server has it."""
    from kernel.store import Store

    store = Store(root)  # migrated, and its staging swept, before anyone connects
    held = open(store.workspace.root / "locks" / wire.SERVER_LOCK, "a+")  # noqa: SIM115
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        held.close()
        return 3
    path = wire.socket_path(store.workspace.root)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # a killed server's
    # Take the file in our turn of the file lock's queue and listen before giving the turn
    # back: whoever is queued behind us then finds the socket instead of a locked file.
    with store._queue.turn(time.monotonic() + store.lock_timeout_s):
        db = _open(store)
        server = StoreServer(path, db)
    os.chmod(path, 0o600)
    held.truncate(0)
    held.write(str(os.getpid()))
    held.flush()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                     daemon=True).start()
    if ready:
        ready(path)
    try:
        while not stop.wait(0.5):
            idle = server.clients == 0
            if parent and not pid_alive(parent) and idle:
                break
            if idle_exit_s is not None and idle and \
                    time.monotonic() - server.last_active > idle_exit_s:
                break
    finally:
        server.shutdown()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # new clients go back to the file lock ...
        server.server_close()
        server.drop_clients()
        db.close()  # ... once this checkpoint lets go of the file
        held.close()
    return 0


def _open(store) -> duckdb.DuckDBPyConnection:
    """The read-write connection the server keeps, retrying while a client that has not seen
    the socket yet still holds the file (each holds it for one short block)."""
    deadline = time.monotonic() + store.lock_timeout_s
    while True:
        try:
            db = duckdb.connect(str(store.path))
            db.execute("SET enable_progress_bar = false")
            return db
        except duckdb.IOException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kernel.store_server")
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--parent", type=int, default=None,
                        help="exit once this process has ended and no client is connected")
    parser.add_argument("--idle-exit", type=float, default=None,
                        help="exit after this many seconds without a client")
    args = parser.parse_args(argv)
    return serve(Path(args.workspace), args.parent, args.idle_exit,
                 ready=lambda p: print(f"store process {os.getpid()} on {p}", flush=True))


if __name__ == "__main__":
    sys.exit(main())
