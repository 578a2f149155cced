"""The whole loop by clicks only, in a real Chromium (issue 11): upload a file, dedup, score,
filter, split, create an eval suite from the held-out rows, download an export, train the
offline tiny model, evaluate base and checkpoint on the suite (the Jobs panel must
refresh by itself: no reload), compare, and ask checkpoint and base the same thing in the
Playground. No CLI step, no typed URL after the first page and no library call between the
clicks; the workspace starts with only the tiny model in it.
Screenshots in test-artifacts/screenshots/loop-*.png.

Pages owned by other helpers that this test drives (keep their labels in step): Train
("New run" tab, its form, "Launch run", "Runs" tab), Evaluate ("New evaluation", "Suite",
"Launch evaluation", "Jobs", "Results"), Compare (title and a chart), Playground
("Checkpoint", chat input, one column per model).
"""

from __future__ import annotations

import json
import re
import shutil

import pytest

from tests.helpers.browser import CHROMIUM_ARGS, no_tracebacks, settle, shot, studio_ui

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture
def empty_studio(tmp_path, tiny_model):
    ws = tmp_path / "ws"
    (ws / "models").mkdir(parents=True)
    shutil.copytree(tiny_model, ws / "models" / "tiny")  # offered as a base model on Train
    with studio_ui(ws, tmp_path) as url:
        yield url, ws


def data_file(tmp_path):
    from training import synthetic

    pairs = list(dict.fromkeys((r["instruction"], r["response"]) for r in
                               synthetic.generate(["repeat_twice", "reverse"], 60, seed=0)))
    assert len(pairs) >= 60
    pairs = pairs[:60] + pairs[:6]  # 60 unique rows and 6 exact duplicates for the dedup step
    path = tmp_path / "loop.jsonl"
    path.write_text("".join(json.dumps({"instruction": i, "output": o}) + "\n" for i, o in pairs))
    return path


def test_whole_loop_by_clicks_only(empty_studio, chromium_path, tmp_path):
    from playwright.sync_api import sync_playwright

    url, _ = empty_studio
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900}, accept_downloads=True)
        page.set_default_timeout(60_000)

        def tab(name: str) -> None:
            page.get_by_role("tab", name=name).click()
            settle(page)

        try:
            # Upload and import
            page.goto(url + "datasets")
            settle(page)
            tab("Import")
            page.locator("input[type=file]").set_input_files(str(data_file(tmp_path)))
            page.get_by_text("Detected format").wait_for()
            settle(page)
            page.get_by_role("button", name="Import", exact=True).click()
            page.get_by_text("Imported 66 rows").wait_for()
            settle(page)
            shot(page, "loop-01-imported")

            # Curate: dedup, score, filter, split, suite
            page.get_by_role("link", name="Curate").click()
            settle(page)
            page.get_by_role("button", name="Run dedup").click()
            page.get_by_text("saved loop@v2").first.wait_for(timeout=120_000)
            settle(page)
            tab("Scores & filters")
            page.get_by_role("button", name="Compute").click()
            page.get_by_text("saved loop@v3").first.wait_for(timeout=120_000)
            settle(page)
            page.get_by_role("button", name="Save as new version").click()
            page.get_by_text("Saved loop@v4 with 60 rows (6 removed)").wait_for()
            settle(page)
            shot(page, "loop-02-filtered")
            tab("Split & suite")
            page.get_by_role("button", name="Save split as new version").click()
            page.get_by_text(re.compile(r"Saved loop@v5: 54 train rows, 6 held out")).wait_for()
            settle(page)
            form = page.get_by_test_id("stForm").filter(has_text="Suite name")
            form.get_by_role("spinbutton", name="Max new tokens").fill("8")
            form.get_by_role("button", name="Create suite").click()
            page.get_by_text("Created suite loop-heldout with 6 rows").wait_for()
            shot(page, "loop-03-suite")
            no_tracebacks(page)

            # Export: download the curated version
            page.get_by_role("link", name="Datasets").click()
            settle(page)
            page.get_by_text("60 rows match").wait_for()
            with page.expect_download() as got:
                page.get_by_test_id("stDownloadButton").get_by_role("button").click()
            lines = got.value.path().read_text().splitlines()
            assert got.value.suggested_filename == "loop-v5.jsonl" and len(lines) == 60
            assert sum(json.loads(line)["split"] == "heldout" for line in lines) == 6
            shot(page, "loop-04-export")

            # Train the tiny model on the curated version (the form's newest dataset)
            page.get_by_role("link", name="Train").click()
            settle(page)
            tab("New run")
            form = page.get_by_test_id("stForm")
            form.get_by_role("spinbutton", name="max steps").fill("10")
            form.get_by_text("Advanced").click()
            form.get_by_role("spinbutton", name="logging steps").fill("2")
            form.get_by_role("spinbutton", name="eval steps").fill("10")
            form.get_by_role("spinbutton", name="save steps").fill("10")
            form.get_by_role("spinbutton", name="batch size").fill("8")
            shot(page, "loop-05-train-form")
            page.get_by_role("button", name="Launch run").click()
            page.get_by_text("Launched run").wait_for()
            settle(page)
            tab("Runs")
            page.get_by_text(re.compile(r"— completed$")).first.wait_for(timeout=300_000)
            settle(page)
            shot(page, "loop-06-trained")
            no_tracebacks(page)

            # Evaluate base and checkpoint on the suite made above
            page.get_by_role("link", name="Evaluate").click()
            settle(page)
            tab("New evaluation")
            page.get_by_test_id("stSelectbox").filter(has_text="Suite").click()
            page.get_by_role("option", name=re.compile(r"^loop-heldout ")).click()
            page.get_by_role("button", name="Launch evaluation").click()
            page.get_by_text("Launched eval job").wait_for()
            settle(page)
            tab("Jobs")
            # No reload: the Jobs panel refreshes itself (a fragment) until the job ends
            page.get_by_text(re.compile(r" — completed")).first.wait_for(timeout=420_000)
            settle(page)
            shot(page, "loop-07-evaluated")

            # Compare
            page.get_by_role("link", name="Compare").click()
            settle(page)
            page.get_by_role("heading", name="Compare").wait_for()
            page.locator(".vega-embed").first.wait_for(timeout=120_000)
            settle(page)
            assert page.get_by_role("combobox", name="Suite").first.input_value() == "loop-heldout"
            shot(page, "loop-08-compare")
            no_tracebacks(page)

            # Playground: the trained checkpoint next to its base, same prompt, both answers
            page.get_by_role("link", name="Playground").click()
            settle(page)
            page.get_by_role("heading", name="Playground").wait_for()
            picked = page.get_by_role("combobox", name="Checkpoint").input_value()
            assert picked and not picked.startswith("base:"), picked
            page.get_by_role("heading", name="base: tiny").wait_for()  # its base, beside it
            box = page.get_by_test_id("stChatInputTextArea")
            box.fill("Say apple two times.")
            box.press("Enter")
            page.wait_for_function(
                "() => document.querySelectorAll('[data-testid=stChatMessage]').length >= 4",
                timeout=180_000)
            settle(page)
            columns = page.get_by_test_id("stColumn").filter(
                has=page.get_by_test_id("stChatMessage"))
            assert columns.count() == 2  # side by side, each with the prompt and its answer
            for i in range(2):
                column = columns.nth(i)
                assert column.get_by_text("Say apple two times.", exact=True).count() == 1
                assert column.get_by_text(re.compile(r"^\d+ tokens · ")).count() == 1
            shot(page, "loop-09-playground")
            no_tracebacks(page)
        except Exception:
            shot(page, "loop-failure")
            raise
        browser.close()
