"""The Compare page in a real headless Chromium: timed first render and baseline change, the
selection as a link that reproduces the view, a screenshot per tab.

The workspace is prepared through library calls: the tiny model and two perturbed LoRA adapters
evaluated for real (HF backend) on a task suite with categories and a general suite. Set
STUDIO_COMPARE_WS to a workspace with stored results (e.g. `studio demo --no-ui --workspace
DIR`: 4 checkpoints x 400 prompts) to time the page on it instead. Times are printed and saved
to test-artifacts/compare-timing.json; speed goals are checked by bench/bench_ui_pages.py.

Two numbers per step: `*_verdict_s`, the time until the user sees the answer (every verdict
present and, after a baseline change, every verdict naming the new baseline, none stale), and
`*_settled_s`, until Streamlit has finished the run as `settle()` sees it, which includes its
fixed waits (`settle_fixed_waits_s`, two 300 ms pauses); the first is what a person waits for.
`*_server_cpu_s`: CPU seconds the server process spent meanwhile (from /proc), which a loaded
machine does not inflate as it does wall times; `warm_up_server_cpu_s` is what it had spent
when the browser opened the page (Streamlit's start; the warm-up then runs beside the first
view, so `first_verdict_server_cpu_s` includes what of it was left).
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from kernel.machine import describe_line
from tests.helpers.browser import (
    CHROMIUM_ARGS,
    REPO,
    SETTLE_FIXED_WAITS_S,
    no_tracebacks,
    server_cpu_s,
    settle,
    shot,
    studio_ui,
)

pytestmark = [pytest.mark.slow, pytest.mark.browser]

VERDICT = re.compile(r"(beats|is worse than|no significant difference|score the same)")


@pytest.fixture
def compare_ws(tmp_path, tiny_model) -> Path:
    given = os.environ.get("STUDIO_COMPARE_WS")
    if given:
        return Path(given)
    from kernel.store import Store
    from tests.helpers.fixtures import evaluated_workspace

    store = Store(tmp_path / "ws")
    evaluated_workspace(store, tiny_model, tmp_path, scales=(0.2, 0.5))
    return store.workspace.root


def verdicts(page) -> list[str]:
    return [t for t in page.locator("[data-testid=stAlert]").all_inner_texts() if VERDICT.search(t)]


# True when `count` verdict alerts are shown, none stale, each naming `name` (if given).
VERDICTS_SHOWN = """([count, name]) => {
  const re = /(beats|is worse than|no significant difference|score the same)/;
  const alerts = [...document.querySelectorAll('[data-testid=stAlert]')]
    .filter(e => re.test(e.innerText));
  return alerts.length === count && alerts.every(e => !e.closest('[data-stale=true]')
    && (!name || e.innerText.includes(name)));
}"""


def test_compare_page_timed_first_render_baseline_change_and_deep_link(compare_ws, tmp_path,
                                                                       chromium_path):
    from playwright.sync_api import sync_playwright

    times: dict[str, float] = {}
    with studio_ui(compare_ws, tmp_path) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(120_000)
        try:
            # A fresh server (its warm-up thread started with it): the first view.
            # Opened the moment the server answers: the warm-up runs while the browser loads.
            times["warm_up_server_cpu_s"] = cpu0 = server_cpu_s(url)
            t0 = time.perf_counter()
            page.goto(url + "compare")
            page.get_by_text(VERDICT).first.wait_for()
            times["first_verdict_s"] = time.perf_counter() - t0
            times["first_verdict_server_cpu_s"] = server_cpu_s(url) - cpu0
            page.locator(".vega-embed").first.wait_for()
            times["first_chart_s"] = time.perf_counter() - t0
            settle(page)
            times["first_settled_s"] = time.perf_counter() - t0
            no_tracebacks(page)
            before = verdicts(page)
            assert before, page.content()[:2000]
            shot(page, "compare-01-summary")

            # Change the baseline: the verdicts now compare against the new one.
            page.get_by_test_id("stSelectbox").filter(has_text="Baseline").click()
            options = page.get_by_role("option")
            new_baseline = options.nth(1).inner_text().strip()
            t0, cpu0 = time.perf_counter(), server_cpu_s(url)
            options.nth(1).click()
            page.wait_for_function(VERDICTS_SHOWN, arg=[len(before), new_baseline],
                                   polling=20)
            times["baseline_change_verdict_s"] = time.perf_counter() - t0
            times["baseline_change_server_cpu_s"] = server_cpu_s(url) - cpu0
            settle(page)
            times["baseline_change_settled_s"] = time.perf_counter() - t0
            no_tracebacks(page)
            after = verdicts(page)
            assert after and after != before
            assert len(after) == len(before)        # the old baseline became a candidate
            assert all(new_baseline in v for v in after), (new_baseline, after)
            shot(page, "compare-02-baseline-changed")

            # Each tab renders (lazily, when opened) and is part of the link.
            for tab in ("Forgetting", "Categories", "Examples"):
                page.get_by_role("tab", name=tab).click()
                settle(page)
                no_tracebacks(page)
                shot(page, f"compare-03-{tab.lower()}")
            examples = page.locator(".tsdiff")
            if examples.count():
                text = examples.first.inner_text()
                assert ("✓" in text or "✗" in text or "score" in text), text

            # The link reproduces the view in a new page: baseline, candidates and tab.
            link = page.url
            query = parse_qs(urlparse(link).query)
            assert query.get("cmp_tab") == ["Examples"], link
            assert "cmp_baseline" in query, link
            other = browser.new_page(viewport={"width": 1400, "height": 900})
            t0 = time.perf_counter()                 # a second view on the same server
            other.goto(link)
            other.get_by_text(VERDICT).first.wait_for(timeout=120_000)
            times["second_view_verdict_s"] = time.perf_counter() - t0
            settle(other)
            no_tracebacks(other)
            assert sorted(verdicts(other)) == sorted(after)
            selected = other.get_by_role("tab", selected=True).inner_text()
            assert "Examples" in selected
            assert all(new_baseline in v for v in verdicts(other))   # the chosen baseline
            other.get_by_test_id("stSelectbox").filter(has_text="Baseline").wait_for()
            if examples.count():
                other.locator(".tsdiff").first.wait_for()
            settle(other)
            shot(other, "compare-04-deep-link")
        finally:
            browser.close()
    out = REPO / "test-artifacts" / "compare-timing.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {**{k: round(v, 2) for k, v in times.items()},
              "settle_fixed_waits_s": SETTLE_FIXED_WAITS_S, "workspace": str(compare_ws),
              "machine": describe_line()}
    out.write_text(json.dumps(record, indent=2))
    print("compare page timings:", record)
