"""`studio ui` imports the pages' modules in a background thread as the server starts
(`studio.ui.warmup`, run by `studio.cli.ui_server`): every module a page imports must be in that
list, or the first view of that page pays for it again (issue 11)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "studio" / "app.py", *sorted((REPO / "studio" / "views").glob("*.py"))]


def page_imports() -> set[str]:
    """Modules the pages import at their top level (`import x.y`, `from x.y import z`, and
    `from studio.ui import charts` as `studio.ui.charts`)."""
    found = set()
    for page in PAGES:
        for node in ast.parse(page.read_text()).body:
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                folder = REPO.joinpath(*node.module.split("."))
                found |= {f"{node.module}.{a.name}" for a in node.names
                          if (folder / f"{a.name}.py").exists()}
    return found - {"__future__"}


def test_warm_up_imports_every_module_the_pages_import(tmp_path):
    wanted = sorted(page_imports())
    assert {"evals.compare", "altair", "studio.ui.charts"} <= set(wanted)  # it sees the pages
    code = ("import json, sys\nfrom studio.ui.warmup import warm_up\nwarm_up()\n"
            f"print(json.dumps([m for m in {wanted!r} if m not in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(REPO),
                               "STUDIO_WORKSPACE": str(tmp_path / "ws")})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
    assert (tmp_path / "ws" / "studio.duckdb").exists()   # the schema was checked as well
    assert "warm-up failed" not in done.stderr


def test_studio_ui_runs_streamlit_through_the_warm_up_launcher(tmp_path):
    from studio.cli.ui_cmds import streamlit_command

    argv = streamlit_command("127.0.0.1", 8599)
    assert argv[1:4] == ["-m", "studio.cli.ui_server", "run"]
    assert argv[4].endswith("studio/app.py")


def test_warm_up_gives_way_while_a_page_is_drawn():
    """Between pages the warm-up waits while Streamlit's script thread runs a page."""
    import threading
    import time

    from studio.ui.warmup import SCRIPT_THREAD, _give_way

    page = threading.Thread(target=time.sleep, args=(0.4,), name=SCRIPT_THREAD)
    page.start()
    t0 = time.monotonic()
    _give_way(limit_s=5)
    waited = time.monotonic() - t0
    assert not page.is_alive() and waited >= 0.3
    t0 = time.monotonic()
    _give_way(limit_s=5)              # nothing drawing: no wait
    assert time.monotonic() - t0 < 1.0
