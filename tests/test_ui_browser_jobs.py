"""Live job panels in a real headless Chromium (issue 11: defects 1 and 8, eval progress,
cancel + log, merge, deep links), with a screenshot per page state.

The workspace is prepared by library calls (import, suites, the tiny model); the clicks are the
things tested: launch a run, watch it progress and finish WITHOUT reloading the page (the
fragments), merge its checkpoint, evaluate it from a `?checkpoint=` link, watch per-checkpoint
progress, cancel an eval job and read its log.
"""

from __future__ import annotations

import json
import re
import shutil
import urllib.parse

import pytest

from tests.helpers.browser import CHROMIUM_ARGS, add_suites, no_tracebacks, settle, shot, studio_ui

pytestmark = [pytest.mark.slow, pytest.mark.browser]

RUN_STEPS = 16
LONG_ROWS = 2000


@pytest.fixture
def jobs_server(tmp_path, tiny_model):
    from curation.importer import import_file
    from evals.suites import Suite, save_suite
    from kernel.store import Store
    from tests.helpers.fixtures import make_lora_adapter
    from training import synthetic
    from training.merge import merge_checkpoint

    ws = tmp_path / "ws"
    models = ws / "models"
    models.mkdir(parents=True)
    shutil.copytree(tiny_model, models / "tiny")
    # what the demo leaves in models/: a merged fine-tune whose name sorts before "tiny"
    adapter = make_lora_adapter(tiny_model, tmp_path / "ad", seed=2, scale=0.3)
    merge_checkpoint(None, str(adapter), models / "merged-demo-step-3")
    store = Store(ws)
    rows = synthetic.generate(["repeat_twice"], 32, seed=0)
    data = tmp_path / "tune.jsonl"
    data.write_text("".join(json.dumps({"instruction": r["instruction"],
                                        "output": r["response"]}) + "\n" for r in rows))
    import_file(store, data, "tune")
    add_suites(ws)  # "repeat" and "retained", 8 rows each
    # long enough (minutes) that the test cancels it while it runs, whatever the machine
    long_rows = [{"id": f"long-{i}", "instruction": f"write the word w{i:05d}q backwards",
                  "response": f"q{i:05d}w"} for i in range(LONG_ROWS)]  # all unique
    save_suite(store, Suite(name="long", role="task", metrics=["exact_match"],
                            sampling={"max_new_tokens": 64}, rows=long_rows))
    with studio_ui(ws, tmp_path) as url:
        yield url, ws


def sidebar_jobs(page) -> str:
    return page.get_by_test_id("stSidebar").get_by_test_id("stMetricValue").first.inner_text()


def wait_sidebar_jobs(page, value: str, timeout_ms: int) -> None:
    page.wait_for_function(
        "v => document.querySelector('[data-testid=stSidebar] [data-testid=stMetricValue]')"
        "?.innerText.trim() === v", arg=value, timeout=timeout_ms)


def test_jobs_refresh_live_merge_evaluate_cancel(jobs_server, chromium_path):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    from kernel import store_client
    from kernel.jobs import list_runs
    from kernel.store import Store

    url, ws = jobs_server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(60_000)
        try:
            # Train form: the default base model is the base model, shown by name (defect 8)
            page.goto(url + "train")
            settle(page)
            page.get_by_role("tab", name="New run").click()
            form = page.get_by_test_id("stForm")
            base_box = form.get_by_test_id("stSelectbox").filter(has_text="base model")
            shown = widget_text(base_box)
            assert "tiny" in shown and "merged" not in shown and str(ws) not in shown, shown
            form.get_by_label("name", exact=True).fill("live")
            form.get_by_role("spinbutton", name="max steps").fill(str(RUN_STEPS))
            form.get_by_role("spinbutton", name="batch size").fill("8")
            form.get_by_text("Advanced").click()
            form.get_by_role("spinbutton", name="logging steps").fill("2")
            form.get_by_role("spinbutton", name="eval steps").fill(str(RUN_STEPS))
            form.get_by_role("spinbutton", name="save steps").fill(str(RUN_STEPS))
            shot(page, "jobs-01-train-form")
            page.get_by_role("button", name="Launch run").click()
            page.get_by_text("Launched run").wait_for(timeout=180_000)

            # Defect 1: the new run is selected, and the page follows it without a reload
            assert store_client.server_running(ws)  # `studio ui` serves the store (its process)
            run = list_runs(Store(ws), kind="train")[0]
            label = f"live · {run['id'].rsplit('-', 1)[-1]}"
            runs_tab = page.get_by_role("tab", name="Runs")
            assert runs_tab.get_attribute("aria-selected") == "true"
            page.get_by_test_id("stMultiSelect").filter(has_text=label).wait_for()
            wait_sidebar_jobs(page, "1", 30_000)
            # The run may be queued for a while on a loaded machine, or run all its steps
            # between two polls on a quiet one: progress OR the finished state must show up
            # without a reload; the progress line is checked whenever the run was caught live.
            running = page.get_by_text(re.compile(rf"step \d+ of {RUN_STEPS} · ETA"))
            finished = page.get_by_text(re.compile(r"— completed$"))
            running.or_(finished).first.wait_for(timeout=300_000)
            if running.count():
                shot(page, "jobs-02-train-running")
            finished.wait_for(timeout=240_000)
            page.get_by_text(re.compile(rf"step {RUN_STEPS} of {RUN_STEPS} · finished in")) \
                .wait_for(timeout=10_000)
            wait_sidebar_jobs(page, "0", 10_000)  # the sidebar count drops too
            assert "?run=" + run["id"] in page.url  # the URL reproduces the view
            settle(page)
            shot(page, "jobs-03-train-finished")
            no_tracebacks(page)

            # Merge the checkpoint from the Train page
            page.get_by_text("Merge a checkpoint into a standalone model").click()
            merged_note = page.get_by_text("Merged live")
            merge_failed = page.get_by_text(re.compile(r"^Merge failed"))
            merging = page.get_by_text("Merging the adapter")
            for _ in range(3):  # a click that lands while the page redraws can be lost
                page.get_by_role("button", name="Merge").click()
                try:
                    merging.or_(merged_note).or_(merge_failed).first.wait_for(timeout=20_000)
                    break
                except PlaywrightTimeout:
                    continue
            merged_note.or_(merge_failed).first.wait_for(timeout=120_000)
            assert not merge_failed.count(), merge_failed.inner_text()
            merged = ws / "exports" / f"live-step-{RUN_STEPS}"
            assert (merged / "config.json").exists() and (merged / "README.md").exists()
            shot(page, "jobs-04-train-merged")
            no_tracebacks(page)

            # Evaluate this checkpoint from a link: preselected next to its base model
            ckpt = f"{run['id']}/step-{RUN_STEPS}"
            page.goto(url + "evaluate?checkpoint=" + urllib.parse.quote(ckpt, safe=""))
            settle(page)
            chosen = page.get_by_test_id("stMultiSelect").filter(has_text="Checkpoints")
            assert f"{label} / step-{RUN_STEPS}" in chosen.inner_text()
            assert "base: tiny" in chosen.inner_text()
            launch_eval(page, "repeat")
            jobs_tab = page.get_by_role("tab", name="Jobs")
            assert jobs_tab.get_attribute("aria-selected") == "true"  # the new job, selected
            page.get_by_text(re.compile(r"— completed$")).wait_for(timeout=180_000)
            page.get_by_text(f"{label} / step-{RUN_STEPS}: 8 of 8 generations").wait_for()
            page.get_by_text("base: tiny: 8 of 8 generations").wait_for()
            wait_sidebar_jobs(page, "0", 10_000)
            settle(page)
            shot(page, "jobs-05-eval-finished")

            # A long eval job: per-checkpoint progress while it runs, then cancel, read its log
            page.get_by_role("tab", name="New evaluation").click()
            launch_eval(page, "long")
            page.get_by_text(re.compile(rf"^[1-9]\d* of {2 * LONG_ROWS} generations · ETA")) \
                .wait_for(timeout=180_000)
            page.get_by_text(re.compile(rf"^base: tiny: [1-9]\d* of {LONG_ROWS} generations$")) \
                .wait_for()
            shot(page, "jobs-06-eval-progress")
            cancelled = page.get_by_text(re.compile(r"— cancelled$"))
            for _ in range(3):  # a click that lands while the fragment redraws can be lost
                page.get_by_role("button", name="Cancel").first.click()
                try:
                    cancelled.wait_for(timeout=30_000)
                    break
                except PlaywrightTimeout:
                    continue
            cancelled.wait_for(timeout=1_000)
            wait_sidebar_jobs(page, "0", 10_000)
            settle(page)
            log = page.get_by_test_id("stCode").first.inner_text()
            assert "[job] evals.eval_worker starting" in log and "[eval] base:" in log, log
            shot(page, "jobs-07-eval-cancelled-log")
            no_tracebacks(page)
        except Exception:
            shot(page, "jobs-failure")
            raise
        browser.close()


def widget_text(locator) -> str:
    """What a select box shows: its text and the value of its search input."""
    return locator.evaluate("e => e.innerText + ' ' + [...e.querySelectorAll('input')]"
                            ".map(i => i.value || i.placeholder).join(' ')")


def launch_eval(page, suite: str) -> None:
    page.get_by_test_id("stSelectbox").filter(has_text="Suite").click()
    page.get_by_role("option", name=re.compile(f"^{suite} ")).click()
    page.get_by_role("button", name="Launch evaluation").click()
    page.get_by_text("Launched eval job").wait_for(timeout=120_000)
