"""The process `studio ui` becomes: Streamlit's own command line, with the pages' imports
warming up beside it.

    python -m studio.cli.ui_server run studio/app.py --server.port 8501 ...

A background thread waits until the server listens (so it never delays the server being
reachable: imports hold the GIL), then imports what the pages need (`studio.ui.warmup`) while
the first browser loads Streamlit's scripts; the first page view then no longer pays for
pandas, altair and the libraries (issue 11).
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from pathlib import Path

from kernel.store_client import start_server
from studio.ui.warmup import warm_up


def option(argv: list[str], name: str, default: str) -> str:
    """The value of `--name value` or `--name=value` in a streamlit argv."""
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return default


def wait_listening(host: str, port: int, timeout_s: float = 120.0) -> bool:
    """Poll until something accepts connections on host:port (the server is up)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def warm_up_after_start(host: str, port: int) -> None:
    if wait_listening(host, port):
        seconds = warm_up()
        print(f"studio: pages' modules imported in {seconds:.2f}s", file=sys.stderr, flush=True)


def start_store_process() -> None:
    """The workspace's store process, ending with this server (kernel.store_server): pages,
    the CLI and jobs' records then never wait for a long write, nor pay a DuckDB open."""
    root = os.environ.get("STUDIO_WORKSPACE")
    if root:
        proc = start_server(Path(root), parent=os.getpid())
        if proc is not None:
            print(f"studio: store process {proc.pid} serves {root}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    threading.Thread(target=start_store_process, name="studio-store", daemon=True).start()
    host = option(argv, "--server.address", "127.0.0.1")
    port = int(option(argv, "--server.port", "8501"))
    threading.Thread(target=warm_up_after_start, args=(host, port), name="studio-warm-up",
                     daemon=True).start()
    from streamlit.web import cli as streamlit_cli

    sys.argv = ["streamlit", *argv]
    sys.exit(streamlit_cli.main())


if __name__ == "__main__":
    main()
