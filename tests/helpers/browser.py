"""What every browser test needs: a real `studio ui` server on a free loopback port over a
workspace, and the page helpers (wait for Streamlit to settle, screenshot, no tracebacks).

    with studio_ui(ws, tmp_path) as url:
        page.goto(url + "compare")
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"studio ui exited early with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError("studio ui did not become healthy")


SERVER_PIDS: dict[str, int] = {}   # url -> pid of the `studio ui` server (it execs streamlit)


def server_cpu_s(url: str) -> float:
    """CPU seconds (user + system) the server behind `url` has used so far: what a page view
    cost it, whatever else loads the machine (wall times in a browser test do not show that)."""
    fields = Path(f"/proc/{SERVER_PIDS[url]}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def studio_ui(ws: Path, log_dir: Path) -> Iterator[str]:
    """Runs `studio --workspace WS ui` until the block ends; yields its base URL."""
    port = free_port()
    log = (log_dir / "server.log").open("wb")
    proc = subprocess.Popen([str(REPO / ".venv" / "bin" / "studio"), "--workspace", str(ws), "ui",
                             "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=log_dir)
    url = f"http://127.0.0.1:{port}/"
    SERVER_PIDS[url] = proc.pid
    try:
        wait_healthy(url, proc)
        yield url
    finally:
        SERVER_PIDS.pop(url, None)
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def shot(page, name: str) -> None:
    """Whole page: Streamlit scrolls inside its main container, so grow the viewport to it."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(400)
    size = page.viewport_size
    height = page.evaluate("() => Math.max(...Array.from(document.querySelectorAll("
                           "'[data-testid=stMain], [data-testid=stAppViewContainer]'),"
                           " e => e.scrollHeight), window.innerHeight)")
    page.set_viewport_size({"width": size["width"], "height": min(int(height), 6000)})
    page.wait_for_timeout(300)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    page.set_viewport_size(size)


SETTLE_PAUSE_MS = 300
SETTLE_FIXED_WAITS_S = 2 * SETTLE_PAUSE_MS / 1000   # what settle() always waits, for timings


def settle(page, timeout_ms: int = 60_000) -> None:
    """Wait until Streamlit has finished its runs (no running indicator, no stale elements)."""
    page.wait_for_load_state("networkidle")
    for _ in range(2):  # a rerun may start just after the first check
        page.wait_for_timeout(SETTLE_PAUSE_MS)
        page.wait_for_function(
            "() => !document.querySelector('[data-testid=stStatusWidget]') && "
            "!document.querySelector('[data-stale=true]')", timeout=timeout_ms)


def no_tracebacks(page) -> None:
    assert page.locator("[data-testid='stException']").count() == 0, page.content()[:2000]


def add_suites(ws: Path) -> None:
    """A task suite (what the run should learn) and a general one (what it must not forget)."""
    from evals.suites import Suite, save_suite
    from kernel.store import Store
    from training import synthetic

    store = Store(ws)
    for name, role, family in (("repeat", "task", "repeat_twice"), ("retained", "general",
                                                                     "reverse")):
        rows = [{**r, "id": f"{name}-{i}"}
                for i, r in enumerate(synthetic.generate([family], 8, seed=9))]
        save_suite(store, Suite(name=name, role=role, metrics=["token_f1", "exact_match"],
                                sampling={"max_new_tokens": 8}, rows=rows))
