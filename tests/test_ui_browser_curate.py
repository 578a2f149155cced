"""Datasets and Curate in a real Chromium (issue 11): routes, deep links, a finished step's
result timed, the new version selected after each step, rows ticked in the table excluded and
edited, a version downloaded, a mistyped workspace refused. Screenshots in
test-artifacts/screenshots/curate-*.png."""

from __future__ import annotations

import io
import json
import os
import re
import time

import pytest

from tests.helpers.browser import CHROMIUM_ARGS, REPO, no_tracebacks, settle, shot, studio_ui

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ROWS = [{"id": f"w{i:02d}", "instruction": f"Say word {i}", "output": f"word {i} " * (i % 4 + 1),
         "category": "odd" if i % 2 else "even"} for i in range(20)]
ROWS += [{**ROWS[3], "id": "w03-copy"}, {**ROWS[5], "id": "w05-copy"}]  # exact duplicates


@pytest.fixture
def words_ui(tmp_path):
    from curation.importer import import_file
    from kernel.store import Store

    ws = tmp_path / "ws"
    path = tmp_path / "words.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    import_file(Store(ws), path, "words")
    with studio_ui(ws, tmp_path) as url:
        yield url, ws


def picked(page, label: str) -> str:
    """The value the first selectbox labelled `label` shows."""
    return page.get_by_role("combobox", name=label).first.input_value()


def tick_rows(page, table, indexes: list[int]) -> None:
    """Tick rows of an st.dataframe (a canvas grid): click the row-marker cells."""
    box = table.bounding_box()
    for i in indexes:
        page.mouse.click(box["x"] + 16, box["y"] + 35 * (i + 1) + 17)
        page.wait_for_timeout(300)


def timed_step(page, ws, button: str, done_text: str) -> tuple[float, float, float]:
    """Click a background step's button and wait for its result on the page. Returns the
    seconds from the click; from the step's version record (`created_at`, set when its
    transaction began, on this same machine's clock) to the result being shown, which also
    counts the rest of the step's own transaction; and the click-to-result time less the
    step's own duration as the page reports it ("finished in X.Xs"): the page's own delay,
    its start of the step included."""
    from curation.datasets import list_versions
    from kernel.store import Store

    t0 = time.monotonic()
    page.get_by_role("button", name=button).click()
    page.get_by_text(done_text).first.wait_for(timeout=120_000)
    shown_at, seen = time.time(), time.monotonic() - t0
    made = list_versions(Store(ws), "words")[-1]
    text = page.get_by_text(done_text).first.inner_text()
    step_s = float(re.search(r"finished in ([\d.]+)s", text).group(1))
    return seen, shown_at - made["created_at"].timestamp(), seen - step_s


def test_curate_and_datasets_pages_in_the_browser(words_ui, chromium_path, tmp_path):
    from playwright.sync_api import sync_playwright

    url, ws = words_ui
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900}, accept_downloads=True)
        page.set_default_timeout(60_000)
        try:
            # Routes: "/" opens /datasets, and /datasets works on its own (defect 7)
            page.goto(url)
            # the page may put its selection in the query before or after the route changes
            page.wait_for_url(re.compile(r"/datasets(\?[^/]*)?$"))
            settle(page)
            page.goto(url + "datasets")
            settle(page)
            page.get_by_role("heading", name="Datasets").wait_for()
            assert page.get_by_text("Page not found").count() == 0
            shot(page, "curate-01-datasets-route")

            # Curate: a dedup in the background; its result timed; the new version selected
            page.goto(url + "curate?dataset=words&version=v1")
            settle(page)
            assert picked(page, "Version") == "v1"
            seen, delay, overhead = timed_step(page, ws, "Run dedup", "saved words@v2")
            page.wait_for_function("() => location.search.includes('version=v2')")
            settle(page)
            assert picked(page, "Version") == "v2"  # defect 6: the version the step made
            print(f"\ndedup result shown {seen:.2f}s after the click, {delay:.2f}s after its "
                  f"version record, {overhead:.2f}s beyond the step's own time (steps under "
                  "1 s are shown by the click's run, longer ones polled every 0.25 s; load "
                  f"average {os.getloadavg()[0]:.1f})")
            delays = {"dedup": [delay, overhead]}
            shot(page, "curate-02-dedup-done")

            page.get_by_role("tab", name="Scores & filters").click()
            settle(page)
            seen, delay, overhead = timed_step(page, ws, "Compute", "saved words@v3")
            print(f"score result shown {seen:.2f}s after the click, {delay:.2f}s after its "
                  f"version record, {overhead:.2f}s beyond the step's own time")
            delays["score"] = [delay, overhead]
            out = REPO / "test-artifacts" / "curate-timing.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps({
                "result_shown_s_after_version_record_and_beyond_step_time": {
                    k: [round(x, 2) for x in v] for k, v in delays.items()},
                "load_average": os.getloadavg()[0], "cores": os.cpu_count()}, indent=2))
            settle(page)
            assert picked(page, "Version") == "v3"
            page.get_by_text("Rows kept").wait_for()
            page.get_by_role("button", name="Save as new version").click()
            page.get_by_text("Saved words@v4 with 20 rows").wait_for()
            settle(page)
            assert picked(page, "Version") == "v4"
            assert "version=v4" in page.url
            shot(page, "curate-03-filter-saved")
            no_tracebacks(page)

            # A link reproduces the view
            page.goto(url + "curate?dataset=words&version=v2")
            settle(page)
            assert picked(page, "Version") == "v2"
            page.get_by_role("heading", name="Duplicate clusters").wait_for()
            shot(page, "curate-04-deep-link-v2")

            # Datasets: tick two rows, exclude them as a new version
            page.goto(url + "datasets?dataset=words&version=v4")
            settle(page)
            assert picked(page, "Version") == "v4"
            page.get_by_text("20 rows match").wait_for()
            table = page.get_by_test_id("stDataFrame").nth(1)
            tick_rows(page, table, [0, 1])
            page.get_by_role("button", name="Exclude 2 selected rows").click()
            page.get_by_text("Saved words@v5 without 2 rows").wait_for()
            settle(page)
            assert picked(page, "Version") == "v5" and "version=v5" in page.url
            page.get_by_text("18 rows match").wait_for()
            shot(page, "curate-05-excluded")

            # One row ticked: its detail (scores, duplicate flag) and an edit
            tick_rows(page, page.get_by_test_id("stDataFrame").nth(1), [0])
            page.get_by_role("heading", name="Row detail").wait_for()
            page.get_by_text("duplicate: no").wait_for()
            shot(page, "curate-06-row-detail")
            form = page.get_by_test_id("stForm").filter(has_text="Edit this row")
            form.get_by_label("Response").fill("an edited answer")
            form.get_by_role("button", name="Save edit as new version").click()
            page.get_by_text("Saved words@v6 with row").wait_for()
            settle(page)
            assert picked(page, "Version") == "v6"
            no_tracebacks(page)

            # Export: the version as Parquet, downloaded by the browser
            page.get_by_test_id("stRadio").filter(has_text="Hugging Face folder").get_by_text(
                "Parquet", exact=True).click()
            settle(page)
            with page.expect_download() as got:
                page.get_by_test_id("stDownloadButton").get_by_role("button").click()
            download = got.value
            assert download.suggested_filename == "words-v6.parquet"
            data = download.path().read_bytes()
            import pyarrow.parquet as pq

            table = pq.read_table(io.BytesIO(data))
            assert table.num_rows == 18
            assert "an edited answer" in table.column("response").to_pylist()
            shot(page, "curate-07-export")

            # Switch workspace: a typo is refused, nothing is created
            typo = tmp_path / "wss"
            side = page.get_by_test_id("stSidebar")
            side.get_by_role("textbox").fill(str(typo))
            side.get_by_role("button", name="Switch workspace").click()
            side.get_by_text("does not exist").wait_for()
            assert not typo.exists()
            shot(page, "curate-08-workspace-typo")
            no_tracebacks(page)
        except Exception:
            shot(page, "curate-failure")
            raise
        browser.close()
