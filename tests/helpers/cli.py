"""Run the real `studio` CLI from a test: in this process (fast, `--json` output parsed) or as
its own process (exit codes, signals, a fresh interpreter), always importing this checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def cli_json(capsys, workspace, *args: str):
    """`studio --workspace WS ARGS` in this process; its stdout parsed as one JSON document."""
    from kernel.workspace import Workspace
    from studio.cli import main as studio_main

    root = workspace.root if isinstance(workspace, Workspace) else workspace  # (Path.root is "/")
    capsys.readouterr()
    studio_main(["--workspace", str(root), *args])
    return json.loads(capsys.readouterr().out)


def studio_process(ws, *args: str, timeout: float = 300,
                   env: dict | None = None) -> subprocess.CompletedProcess:
    """`studio ARGS` in its own process with STUDIO_WORKSPACE=ws."""
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {}), "STUDIO_WORKSPACE": str(ws)}
    return subprocess.run([sys.executable, "-c", "from studio.cli import main; main()", *args],
                          env=env, capture_output=True, text=True, timeout=timeout)
