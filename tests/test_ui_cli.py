"""`studio ui`: the command line that serves the studio (loopback by default, warns otherwise)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STUDIO = str(REPO / ".venv" / "bin" / "studio")


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([STUDIO, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_dry_run_binds_loopback_and_passes_the_workspace(tmp_path):
    ws = tmp_path / "ws"
    done = run_cli("--workspace", str(ws), "ui", "--dry-run", "--json", "--page", "compare",
                   "--port", "8611")
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["workspace"] == str(ws.resolve())
    assert info["url"] == "http://127.0.0.1:8611/?page=compare"
    argv = info["command"]
    assert argv[argv.index("--server.address") + 1] == "127.0.0.1"
    assert argv[argv.index("--server.port") + 1] == "8611"
    assert argv[argv.index("run") + 1].endswith("studio/app.py")
    assert "warning" not in done.stderr


def test_binding_elsewhere_warns(tmp_path):
    done = run_cli("--workspace", str(tmp_path / "ws"), "ui", "--host", "0.0.0.0", "--dry-run")
    assert done.returncode == 0
    assert "warning: binding to 0.0.0.0" in done.stderr


def test_unknown_page_is_a_usage_error(tmp_path):
    done = run_cli("--workspace", str(tmp_path / "ws"), "ui", "--page", "nope", "--dry-run")
    assert done.returncode == 2
    assert "nope" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_studio_ui_serves_the_app_over_http(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([STUDIO, "--workspace", str(tmp_path / "ws"), "ui", "--port",
                             str(port)], stdout=(tmp_path / "server.log").open("wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, body = time.time() + 60, b""
        while time.time() < deadline and body != b"ok":
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health",
                                            timeout=2) as r:
                    body = r.read().strip()
            except OSError:
                time.sleep(0.3)
        assert body == b"ok"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
            assert b"<div id=\"root\"" in r.read()
        assert (tmp_path / "ws" / "runs").is_dir()  # the workspace folder was set up
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:  # never leave a server behind
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
