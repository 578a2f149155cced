"""The store process's wire format: framed messages over a Unix socket, no pickle.

A message is a JSON header plus an optional Arrow IPC payload (tables registered with the
store, results asked for as Arrow). Python values (query parameters, fetched rows) travel as
JSON with tags for what JSON lacks (bytes, dates, decimals, UUIDs), so a row read through the
store process has the same Python types as one read from DuckDB directly.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import hashlib
import json
import os
import socket
import struct
import tempfile
import uuid
from pathlib import Path

_HEAD = struct.Struct("!IQ")  # header length, payload length
SERVER_LOCK = "store-server"  # under <workspace>/locks/: flock of the store process, its pid


def socket_path(root: Path) -> Path:
    """Where the store process of workspace `root` listens. In a private folder under the
    temp dir, not in the workspace: a Unix socket path must stay under ~100 bytes."""
    key = hashlib.sha1(str(Path(root).resolve()).encode()).hexdigest()[:20]
    folder = Path(tempfile.gettempdir()) / f"studio-store-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder / f"{key}.sock"


def send(sock: socket.socket, header: dict, payload: bytes = b"") -> None:
    head = json.dumps(header, default=_fail).encode()
    sock.sendall(_HEAD.pack(len(head), len(payload)) + head + payload)


def recv(sock: socket.socket) -> tuple[dict, bytes] | None:
    """The next message, or None when the other side closed the connection."""
    raw = _exactly(sock, _HEAD.size)
    if raw is None:
        return None
    n_head, n_payload = _HEAD.unpack(raw)
    head = _exactly(sock, n_head)
    payload = _exactly(sock, n_payload) if n_payload else b""
    if head is None or payload is None:
        return None
    return json.loads(head), payload


def _exactly(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def _fail(value):
    raise TypeError(f"cannot send {type(value).__name__} to the store process")


_ENCODERS = (  # datetime before date: a datetime is a date too
    (bytes | bytearray | memoryview, "$b", lambda v: base64.b64encode(bytes(v)).decode()),
    (dt.datetime, "$dt", lambda v: v.isoformat()),
    (dt.date, "$d", lambda v: v.isoformat()),
    (dt.time, "$t", lambda v: v.isoformat()),
    (dt.timedelta, "$td", lambda v: [v.days, v.seconds, v.microseconds]),
    (decimal.Decimal, "$dec", str),
    (uuid.UUID, "$uuid", str),
)


def encode(value):
    """A Python value as tagged JSON (see `decode`)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {"$o": {str(k): encode(v) for k, v in value.items()}}
    for kind, tag, make in _ENCODERS:
        if isinstance(value, kind):
            return {tag: make(value)}
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return encode(value.tolist())
    if isinstance(value, Path):
        return str(value)
    return _fail(value)


_TAGS = {
    "$o": lambda v: {k: decode(x) for k, x in v.items()},
    "$b": base64.b64decode,
    "$dt": dt.datetime.fromisoformat,
    "$d": dt.date.fromisoformat,
    "$t": dt.time.fromisoformat,
    "$td": lambda v: dt.timedelta(days=v[0], seconds=v[1], microseconds=v[2]),
    "$dec": decimal.Decimal,
    "$uuid": uuid.UUID,
}


def decode(value):
    if isinstance(value, list):
        return [decode(v) for v in value]
    if isinstance(value, dict):
        (tag, inner), = value.items()
        return _TAGS[tag](inner)
    return value


def arrow_bytes(table) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def arrow_table(payload: bytes):
    import pyarrow as pa

    return pa.ipc.open_stream(payload).read_all()
