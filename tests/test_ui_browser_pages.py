"""The Playground, Experiments and Lineage pages in a real headless Chromium, with screenshots.

The workspace is prepared through library calls (fast): a dataset with a held-out split, a
seed group of two tiny runs (4 steps each), the first evaluated on the held-out suite. The
clicks are the things tested: a chat message answered by a checkpoint and its base side by
side, the experiments table with versions and metrics, the config diff and loss curves of two
runs, cancelling the rest of a group, and runs under their versions in the lineage graph.
"""

from __future__ import annotations

import dataclasses
import re

import pytest

from tests.helpers.browser import CHROMIUM_ARGS, no_tracebacks, settle, shot, studio_ui

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture
def lab(tmp_path, tiny_model, monkeypatch):
    from curation.importer import import_file
    from curation.split import split
    from evals.evaluate import evaluate
    from evals.suites import suite_from_dataset
    from kernel import jobs
    from kernel.store import Store
    from kernel.workspace import Workspace
    from training import synthetic
    from training.config import TrainConfig
    from training.data import write_jsonl
    from training.start_run import launch_group

    monkeypatch.setenv("STUDIO_TORCH_THREADS", "1")
    ws = tmp_path / "ws"
    store = Store(Workspace.open(ws))
    path = tmp_path / "support.jsonl"
    write_jsonl(path, synthetic.generate(["repeat_twice"], 40, seed=3))
    import_file(store, path, "support")
    ref = split(store, "support", held_out=0.2, seed=0)["ref"]
    cfg = TrainConfig(base_model=str(tiny_model), dataset="support", name="grp", max_steps=4,
                      save_steps=4, eval_steps=2, logging_steps=1, report_to=["none"])
    group_id, run_ids = launch_group(store, cfg, [0, 1])
    for run_id in run_ids:
        assert jobs.wait(store, run_id, timeout_s=600)["state"] == "completed"
    suite_from_dataset(store, "held", ref, metrics=["exact_match", "token_f1"])
    evaluate(store, "held", [f"{run_ids[0]}/step-4"], backend="hf")
    with studio_ui(ws, tmp_path) as url:
        yield {"url": url, "store": store, "runs": run_ids, "group": group_id, "cfg": cfg,
               "ref": ref}


def test_playground_experiments_and_lineage_pages(lab, chromium_path):
    journey(lab["url"], lab["store"], lab["runs"], lab["cfg"], chromium_path)


def journey(url: str, store, runs: list[str], cfg, chromium_path: str) -> None:
    from playwright.sync_api import sync_playwright

    from kernel import jobs
    from studio.ui.compare_data import labeller
    from training.listing import run_names
    from training.start_run import launch_group

    a, b = runs
    ckpt = f"{a}/step-4"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(60_000)
        try:
            # Playground, deep-linked to a checkpoint: both models answer the same message
            page.goto(url + f"playground?checkpoint={ckpt}")
            settle(page)
            # named as on every other page (run name · short id / step-N, base: model)
            label = labeller(run_names(store))
            page.get_by_role("heading", name=label(ckpt)).wait_for()
            page.get_by_role("heading", name="base: tiny").wait_for()
            box = page.get_by_test_id("stChatInputTextArea")
            box.fill("Say apple two times. **not bold** <b>x</b>")
            box.press("Enter")
            page.wait_for_function(
                "() => document.querySelectorAll('[data-testid=stChatMessage]').length >= 4",
                timeout=180_000)
            settle(page)
            messages = page.get_by_test_id("stChatMessage")
            assert messages.count() == 4        # user + answer, in each of the two columns
            users = page.get_by_text("Say apple two times. **not bold** <b>x</b>", exact=True)
            assert users.count() == 2           # the user's text shown as typed, not Markdown
            assert page.get_by_text(re.compile(r"^\d+ tokens · ")).count() == 2
            shot(page, "pages-01-playground")
            no_tracebacks(page)

            # Experiments, deep-linked to run b: its exact version; sorted by a held-out
            # metric, the evaluated run a leads; config diff (seed) and both loss curves
            page.goto(url + f"experiments?run={b}")
            settle(page)
            page.get_by_test_id("stDataFrame").first.wait_for()
            page.get_by_text("Data: support@v2").wait_for()
            page.get_by_test_id("stSelectbox").filter(has_text="Sort by").click()
            page.get_by_role("option", name="held/token_f1").click()
            settle(page)
            assert re.search(rf"Best on held/token_f1: grp-seed0 \({a}\) · [01]\.\d{{3}}",
                             page.get_by_text("Best on held/token_f1").inner_text())
            diff = page.get_by_test_id("stTable").inner_text()
            assert "seed" in diff and "grp-seed0" in diff and "grp-seed1" in diff
            assert "learning_rate" not in diff      # only what differs
            page.get_by_text("eval_loss", exact=True).first.wait_for()
            page.get_by_text("eval_loss", exact=True).first.scroll_into_view_if_needed()
            page.wait_for_function(  # loss and eval_loss, one line per run
                "() => document.querySelectorAll('.vega-embed').length >= 2", timeout=30_000)
            link = page.get_by_role("link", name="Evaluate this checkpoint")
            assert f"checkpoint={b}%2Fstep-4" in link.get_attribute("href")
            shot(page, "pages-02-experiments")
            no_tracebacks(page)

            # Cancel the rest of a group: a long second group, one running and one queued
            long_group, long_runs = launch_group(
                store, dataclasses.replace(cfg, name="long", max_steps=2000,
                                           save_steps=2000, eval_steps=2000), [0, 1])
            page.goto(url + "experiments")
            settle(page)
            button = page.get_by_role("button", name="Cancel the rest (2)")
            button.wait_for()
            shot(page, "pages-03-experiments-group-running")
            button.click()
            button.wait_for(state="detached", timeout=60_000)
            settle(page)
            assert {jobs.get_run(store, r)["state"] for r in long_runs} == {"cancelled"}
            assert {jobs.get_run(store, r)["state"] for r in (a, b)} == {"completed"}
            shot(page, "pages-04-experiments-group-cancelled")
            no_tracebacks(page)

            # Lineage, deep-linked to the split version: runs under it with their metrics
            page.goto(url + "lineage?dataset=support&version=v2")
            settle(page)
            page.locator("svg .node").first.wait_for()
            graph = " ".join(page.get_by_test_id("stGraphVizChart").locator("text")
                             .all_text_contents())
            assert "support@v1" in graph and "support@v2" in graph and "split" in graph
            assert "grp-seed0 · completed" in graph and "held: exact_match" in graph
            assert "grp-seed1 · completed" in graph and "not evaluated" in graph
            page.get_by_test_id("stDataFrame").first.wait_for()
            shot(page, "pages-05-lineage")
            page.get_by_role("tab", name="Checkpoint").click()
            page.get_by_text("Provenance (hashes, config, code version)").wait_for()
            shot(page, "pages-06-lineage-checkpoint")
            no_tracebacks(page)
        except Exception:
            shot(page, "pages-failure")
            raise
        browser.close()
