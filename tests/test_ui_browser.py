"""End to end in a real headless Chromium: the user journey of issue 5, with screenshots.

Starts `studio ui` on a free loopback port over a prepared workspace, imports a file by upload,
runs a dedup, launches a tiny training run and waits for it, opens the comparison page, and
saves a full-page screenshot of each page in test-artifacts/screenshots/.
"""

from __future__ import annotations

import http.server
import json
import re
import shutil
import threading
from pathlib import Path

import pytest

from tests.helpers.browser import CHROMIUM_ARGS, add_suites, no_tracebacks, settle, shot, studio_ui

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture
def studio_server(tmp_path, tiny_model):
    ws = tmp_path / "ws"
    (ws / "models").mkdir(parents=True)
    shutil.copytree(tiny_model, ws / "models" / "tiny")  # offered as a base model on Train
    add_suites(ws)
    with studio_ui(ws, tmp_path) as url:
        yield url, ws


def data_file(tmp_path: Path) -> Path:
    from training import synthetic

    rows = synthetic.generate(["repeat_twice"], 40, seed=0)
    rows = rows + rows[:6]  # exact duplicates for the dedup step
    path = tmp_path / "journey.jsonl"
    path.write_text("".join(json.dumps({"instruction": r["instruction"],
                                        "output": r["response"]}) + "\n" for r in rows))
    return path


def test_user_journey_in_browser(studio_server, chromium_path, tmp_path):
    from playwright.sync_api import sync_playwright

    url, ws = studio_server
    path = data_file(tmp_path)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(30_000)
        try:
            # Datasets: upload, see the detected format, import
            page.goto(url)
            settle(page)
            shot(page, "01-datasets-empty")
            page.get_by_role("tab", name="Import").click()
            page.locator("input[type=file]").set_input_files(str(path))
            page.get_by_text("Detected format").wait_for()
            settle(page)
            shot(page, "02-import-preview")
            page.get_by_role("button", name="Import").click()
            page.get_by_text("Imported 46 rows").wait_for()
            settle(page)
            page.get_by_role("tab", name="Browse").click()
            page.get_by_text("46 rows match").wait_for()
            shot(page, "03-datasets-browse")
            no_tracebacks(page)

            # Curate: run an exact dedup in the background, review the clusters
            page.goto(url + "curate")
            settle(page)
            page.get_by_role("button", name="Run dedup").click()
            page.get_by_role("heading", name="Duplicate clusters").wait_for(timeout=60_000)
            page.get_by_text("saved journey@v2").wait_for()
            settle(page)
            shot(page, "04-curate-dedup")
            no_tracebacks(page)

            # Train: launch a tiny run from the form, watch it complete
            page.goto(url + "train")
            settle(page)
            page.get_by_role("tab", name="New run").click()
            form = page.get_by_test_id("stForm")
            form.get_by_role("spinbutton", name="max steps").fill("40")
            form.get_by_text("Advanced").click()
            form.get_by_role("spinbutton", name="logging steps").fill("2")
            form.get_by_role("spinbutton", name="eval steps").fill("10")
            form.get_by_role("spinbutton", name="save steps").fill("20")
            form.get_by_role("spinbutton", name="batch size").fill("16")
            shot(page, "05-train-form")
            page.get_by_role("button", name="Launch run").click()
            page.get_by_text("Launched run").wait_for()
            settle(page)
            page.get_by_role("tab", name="Runs").click()
            page.get_by_text(re.compile(r"— completed$")).wait_for(timeout=240_000)
            settle(page)
            page.wait_for_timeout(2500)  # a last fragment tick draws the final curves
            shot(page, "06-train-run")
            no_tracebacks(page)

            # Evaluate: base model and the last checkpoint on both suites, as detached jobs
            page.goto(url + "evaluate")
            settle(page)
            for suite in ("repeat", "retained"):
                page.get_by_role("tab", name="New evaluation").click()
                page.get_by_test_id("stSelectbox").filter(has_text="Suite").click()
                page.get_by_role("option", name=re.compile(f"^{suite} ")).click()
                page.get_by_role("button", name="Launch evaluation").click()
                page.get_by_text("Launched eval job").wait_for()
                settle(page)
            page.get_by_role("tab", name="Jobs").click()
            shot(page, "07-evaluate-jobs")
            page.wait_for_function(
                "() => [...document.querySelectorAll('[data-testid=stMarkdownContainer]')]"
                ".filter(e => / — completed/.test(e.innerText)).length >= 2", timeout=300_000)
            settle(page)
            page.get_by_role("tab", name="Results").click()
            page.get_by_test_id("stDataFrame").first.wait_for(timeout=120_000)
            shot(page, "08-evaluate-results")
            no_tracebacks(page)

            # Compare: opened the way `studio demo` opens it
            page.goto(url + "?page=compare")
            settle(page)
            page.get_by_role("heading", name="Checkpoint × metric").wait_for()
            page.locator(".vega-embed").first.wait_for()
            settle(page)
            shot(page, "09-compare-summary")
            page.get_by_role("tab", name="Examples").click()
            shot(page, "10-compare-examples")
            page.get_by_role("tab", name="Forgetting").click()
            shot(page, "11-compare-forgetting")
            no_tracebacks(page)
        except Exception:
            shot(page, "failure")  # what the page showed when the journey broke
            raise
        browser.close()


class _Counter(http.server.BaseHTTPRequestHandler):
    """Counts every request; a hostile row's image URLs point here."""

    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        _Counter.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def bait_server():
    """A tiny HTTP server on loopback that records what the browser fetches from it."""
    _Counter.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def hostile_workspace(ws: Path, bait: str) -> dict[str, str]:
    """A dataset whose text, ids and categories are Markdown that fetches `bait` URLs if
    rendered, deduplicated (so clusters and a version diff show it), and two runs whose
    names and errors are the same kind of Markdown."""
    from curation.dedup import dedup
    from curation.importer import import_file
    from kernel.store import Store

    texts = {"id": f"r1` ![id]({bait}/id.png) `x",
             "instruction": f"Describe ![inst]({bait}/inst.png) please",
             "response": f"![x]({bait}/p.png) <img src='{bait}/img.png'> **not bold**",
             "category": f"[cat]({bait}/cat.png)",
             "run": f"![run]({bait}/run.png) `tick",
             "error": f"boom ![err]({bait}/err.png)"}
    rows = [{"id": texts["id"], "instruction": texts["instruction"], "output": texts["response"],
             "category": texts["category"]},
            {"id": "r2", "instruction": texts["instruction"], "output": texts["response"],
             "category": texts["category"]}]
    rows += [{"id": f"ok{i}", "instruction": f"say {i}", "output": f"{i}"} for i in range(5)]
    path = ws / "hostile.jsonl"
    ws.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    store = Store(ws)
    import_file(store, path, "hostile")
    dedup(store, "hostile", method="exact")
    for kind in ("train", "eval"):
        run_id = f"{kind}-hostile"
        folder = store.workspace.run_dir(run_id)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "status.json").write_text(json.dumps({"state": "failed"}))
        with store.transaction() as con:
            con.execute("INSERT INTO runs (id, kind, name, state, run_dir, config, error) "
                        "VALUES (?,?,?,?,?,?,?)",
                        [run_id, kind, texts["run"], "failed", str(folder), "{}", texts["error"]])
    return texts


@pytest.fixture
def hostile_studio(tmp_path, bait_server):
    ws = tmp_path / "ws"
    texts = hostile_workspace(ws, bait_server)
    with studio_ui(ws, tmp_path) as url:
        yield url, texts


def test_hostile_rows_and_run_names_fetch_nothing_and_show_literally(hostile_studio,
                                                                     chromium_path):
    """Issue 14 item 7: user data is shown as text, never rendered as Markdown."""
    from playwright.sync_api import sync_playwright

    from studio.ui.runs import run_label  # how every page names a run

    url, texts = hostile_studio
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(30_000)

        def shown(text: str) -> None:
            """`text` is on the page as typed, in a text or Markdown element (not a table)."""
            page.locator("[data-testid=stText], [data-testid=stMarkdownContainer]").filter(
                has_text=text).first.wait_for()

        try:
            page.goto(url + "curate")  # the dedup version: its clusters show the rows' text
            settle(page)
            page.get_by_role("heading", name="Duplicate clusters").wait_for()
            page.wait_for_timeout(1000)  # an image in the rows would have been requested by now
            assert _Counter.hits == [], f"the page fetched {_Counter.hits}"
            shown(texts["response"])
            shown(texts["instruction"])
            shown(texts["id"] + " · line")
            shot(page, "12-hostile-curate")
            page.get_by_role("tab", name="Versions").click()
            settle(page)
            page.get_by_role("tab", name="Decontamination").click()
            no_tracebacks(page)

            page.goto(url + "train")
            settle(page)
            shown(run_label({"id": "train-hostile", "name": texts["run"]}) + " — failed")
            shown(texts["error"])
            shot(page, "13-hostile-train")
            page.goto(url + "evaluate")
            settle(page)
            page.get_by_role("tab", name="Jobs").click()
            shown(run_label({"id": "eval-hostile", "name": texts["run"]}) + " — failed")
            page.goto(url + "datasets")
            settle(page)
            no_tracebacks(page)
            page.wait_for_timeout(1000)
        except Exception:
            shot(page, "failure-hostile")
            raise
        browser.close()
    assert _Counter.hits == []
