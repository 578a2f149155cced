"""A connection to the workspace's store process (kernel.store_server) that behaves like the
part of a DuckDB connection the studio uses: `execute` / `executemany`, then `fetchone`,
`fetchall`, `fetchmany`, `df`, `to_arrow_table`, `description`; `register` /
`unregister` of Arrow tables or DataFrames; `create_function` of a studio function.

`Store.connect()` returns one of these whenever the workspace's store process is running, so
library code does not know which it got. Errors come back as the DuckDB exception class the
server saw, so `except duckdb.ConstraintException` works the same.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb

from kernel import store_wire as wire
from kernel.errors import StudioError, WorkspaceBusyError


class StoreProcessGone(StudioError):
    """The store process ended in the middle of an operation."""


def open_remote(root: Path, read_only: bool, timeout_s: float) -> RemoteConnection | None:
    """A connection through the running store process, or None when there is none."""
    path = wire.socket_path(root)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except OSError:  # no socket file, or a dead server's: no store process
        sock.close()
        return None
    con = RemoteConnection(sock, path)
    try:
        con._call({"op": "hello", "read_only": read_only, "timeout_s": timeout_s})
    except StoreProcessGone:
        con.close()
        return None  # it was shutting down: the file lock serves
    except _Busy as exc:
        con.close()
        raise WorkspaceBusyError(f"workspace {root} is busy: waited {timeout_s:.0f}s for "
                                 f"another write ({exc})") from exc
    return con


def server_running(root: Path) -> bool:
    path = wire.socket_path(root)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(path))
        except OSError:
            return False
        return True


def server_pid(root: Path) -> int | None:
    """The pid of the running store process of `root` (it writes it in its lock file)."""
    if not server_running(root):
        return None
    try:
        return int((Path(root) / "locks" / wire.SERVER_LOCK).read_text())
    except (OSError, ValueError):
        return None


AUTO_ENV = "STUDIO_STORE_PROCESS"  # "1": every Store starts one; "0": only by hand or the UI
AUTO_IDLE_EXIT_S = 20.0  # a store process started on demand ends when idle this long


def auto_start() -> bool:
    return os.environ.get(AUTO_ENV, "") == "1"


def auto_start_allowed() -> bool:
    """May a big write start the store process (kernel.staging)? Unless $STUDIO_STORE_PROCESS=0."""
    return os.environ.get(AUTO_ENV, "") != "0"


def start_server(root: Path, parent: int | None = None, idle_exit_s: float | None = None,
                 wait_s: float = 30.0) -> subprocess.Popen | None:
    """Start the store process of `root` (unless one runs) and wait until it serves; the
    process outlives us unless `parent` is given. None when another one already serves."""
    if server_running(root):
        return None
    argv = [sys.executable, "-m", "kernel.store_server", "--workspace", str(root)]
    if parent:
        argv += ["--parent", str(parent)]
    if idle_exit_s is not None:
        argv += ["--idle-exit", str(idle_exit_s)]
    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(repo), os.environ.get("PYTHONPATH", "")) if p))
    env.pop(AUTO_ENV, None)
    # its output goes to a log, never to our stdout/stderr: a pipe reading ours would
    # otherwise stay open until the store process ends
    locks = Path(root) / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with (locks / "store-server.log").open("ab") as log:
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    threading.Thread(target=proc.wait, daemon=True).start()  # reaped when it ends: no zombie
    deadline = time.monotonic() + wait_s
    while not server_running(root):
        if proc.poll() is not None or time.monotonic() > deadline:
            return None  # another process won the election, or it failed: the file lock serves
        time.sleep(0.02)
    return proc


class _Busy(Exception):
    pass


def _error(info: dict) -> Exception:
    kind, message = info.get("type", "Error"), info.get("message", "")
    if kind == "Busy":
        return _Busy(message)
    cls = getattr(duckdb, kind, None)
    if isinstance(cls, type) and issubclass(cls, duckdb.Error):
        return cls(message)
    return duckdb.Error(f"{kind}: {message}")


class RemoteConnection:
    """One cursor in the store process (its own transaction), used by one thread at a time."""

    def __init__(self, sock: socket.socket, path: Path):
        self._sock = sock
        self._path = path
        self.description: list[tuple] | None = None

    def _call(self, header: dict, payload: bytes = b"") -> dict:
        return self._call_payload(header, payload)[0]

    def _call_payload(self, header: dict, payload: bytes = b"") -> tuple[dict, bytes]:
        try:
            wire.send(self._sock, header, payload)
            reply = wire.recv(self._sock)
        except OSError:
            reply = None
        if reply is None:
            raise StoreProcessGone(
                f"the store process ({self._path}) ended during this operation: what it had "
                "not committed was not written; run it again")
        head, body = reply
        if "error" in head:
            raise _error(head["error"])
        return head, body

    # --- the DuckDB connection API the studio uses ----------------------------------------
    def execute(self, sql: str, params=None) -> RemoteConnection:
        reply = self._call({"op": "execute", "sql": sql, "params": wire.encode(params or [])})
        desc = reply.get("description")
        self.description = ([(name, kind, None, None, None, None, None) for name, kind in desc]
                            if desc else None)
        return self

    def executemany(self, sql: str, rows) -> RemoteConnection:
        self._call({"op": "executemany", "sql": sql, "rows": wire.encode(list(rows))})
        self.description = None
        return self

    def _fetch(self, how: str, **extra):
        """The server runs the cursor's own `how` (fetchone, fetchall, fetchmany)."""
        return wire.decode(self._call({"op": "fetch", "how": how, **extra})["value"])

    def fetchone(self):
        row = self._fetch("fetchone")
        return None if row is None else tuple(row)

    def fetchall(self) -> list[tuple]:
        return [tuple(r) for r in self._fetch("fetchall")]

    def fetchmany(self, size: int = 1) -> list[tuple]:
        return [tuple(r) for r in self._fetch("fetchmany", size=size)]

    def to_arrow_table(self):
        return wire.arrow_table(self._call_payload({"op": "fetch", "how": "arrow"})[1])

    def df(self):
        """As DuckDB makes a DataFrame (its own conversion, on a private in-memory DuckDB)."""
        table = self.to_arrow_table()
        with duckdb.connect() as local:
            return local.from_arrow(table).df()

    fetchdf = fetch_df = df

    def register(self, name: str, data) -> RemoteConnection:
        import pyarrow as pa

        if isinstance(data, pa.RecordBatchReader):
            data = data.read_all()
        elif not isinstance(data, pa.Table):
            data = pa.Table.from_pandas(data, preserve_index=False)
        self._call({"op": "register", "name": name}, wire.arrow_bytes(data))
        return self

    def unregister(self, name: str) -> RemoteConnection:
        self._call({"op": "unregister", "name": name})
        return self

    def create_function(self, name: str, function, parameters=None, return_type=None,
                        **options) -> RemoteConnection:
        ref = f"{function.__module__}:{function.__qualname__}"
        self._call({"op": "create_function", "name": name, "ref": ref,
                    "parameters": [str(p) for p in parameters or []],
                    "return_type": str(return_type),
                    "options": {k: (v if isinstance(v, bool | int | float | str) else str(v))
                                for k, v in options.items()}})
        return self

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()

    def __enter__(self) -> RemoteConnection:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
