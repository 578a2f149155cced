"""Prototype, measured in bench_store_load.py (mode `server`): one process owns studio.duckdb
read-write and runs every operation for its clients on its own cursor, one thread per client.

Why: with the file lock (kernel.store + fairlock + staging) every read creates a DuckDB
instance (~25 ms of CPU, far more on a loaded machine) and waits for the writer's turn; writes
are cut into chunks that each pay an open and a checkpoint. Inside one process DuckDB's MVCC
lets reads run while a long write transaction is open, so a writer can do its whole import in
one transaction and readers never wait for it. Not wired into Store: this only measures the
design (see the README's store section). Requests are JSON lines over a Unix socket:
{"sql": ..., "params": [...]} -> {"rows": [...]} | {"error": ...}; the bench's two writes are
{"call": "import"|"score", "args": [...]}, run on the server's cursor inside one transaction.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import socketserver
import time
from pathlib import Path

import duckdb

SOCKET = "store.sock"


class _CursorStore:
    """What legacy_import / legacy_score need of a Store, on the server's cursor."""

    def __init__(self, con):
        self._con = con

    @contextlib.contextmanager
    def transaction(self):
        self._con.execute("BEGIN TRANSACTION")
        try:
            yield self._con
        except BaseException:
            self._con.execute("ROLLBACK")
            raise
        self._con.execute("COMMIT")


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        con = self.server.db.cursor()
        try:
            for line in self.rfile:
                req = json.loads(line)
                try:
                    if "call" in req:
                        self.server.calls[req["call"]](_CursorStore(con), *req.get("args", []))
                        out = {"rows": []}
                    else:
                        out = {"rows": con.execute(req["sql"], req.get("params") or []).fetchall()}
                except Exception as exc:  # noqa: BLE001 - the client gets the error
                    out = {"error": f"{type(exc).__name__}: {exc}"}
                self.wfile.write((json.dumps(out, default=str) + "\n").encode())
                self.wfile.flush()
        finally:
            con.close()


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True


def serve(workspace: str, calls: dict, ready_file: str) -> None:
    """Own `<workspace>/studio.duckdb` and serve until killed."""
    root = Path(workspace)
    sock = root / SOCKET
    with contextlib.suppress(FileNotFoundError):
        sock.unlink()
    server = _Server(str(sock), _Handler)
    server.db = duckdb.connect(str(root / "studio.duckdb"))
    server.db.execute("SET enable_progress_bar = false")
    server.calls = calls
    Path(ready_file).write_text(str(os.getpid()))
    server.serve_forever()


class Client:
    """One connection to the store process."""

    def __init__(self, workspace: str, timeout_s: float = 300.0):
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self._sock.connect(str(Path(workspace) / SOCKET))
                break
            except OSError:
                self._sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self._file = self._sock.makefile("rwb")

    def request(self, **req) -> list:
        self._file.write((json.dumps(req) + "\n").encode())
        self._file.flush()
        out = json.loads(self._file.readline())
        if "error" in out:
            raise RuntimeError(out["error"])
        return out["rows"]

    def close(self) -> None:
        self._file.close()
        self._sock.close()
