"""Import what the pages need while the server waits for its first browser (issue 11).

A fresh `streamlit run` imports a page's modules (pandas, altair, numpy, duckdb, the
libraries) only when the first browser opens that page: ~1.5 s of a 2 s first view of Compare.
`studio ui` runs `warm_up` in a background thread once the server listens
(`studio.cli.ui_server`), so the first view finds them imported. Compare's modules and the
frame's come first (the page `studio demo` opens), then the statistics of Compare's default
suite for each baseline (kept in the store, so the first view and a baseline change read them);
then each other page's modules, one page at a time. Each step waits while a page is being
drawn (imports hold the GIL, and a browser that is already waiting matters more). The imports are plain statements;
`tests/test_ui_warmup.py` checks that every module a page imports is here.
"""

from __future__ import annotations

import logging
import os
import threading
import time

log = logging.getLogger(__name__)

SCRIPT_THREAD = "ScriptRunner.scriptThread"   # the thread Streamlit runs a page in


def warm_up(give_way_s: float = 10.0) -> float:
    """Import the pages' modules, check the workspace's schema and compute Compare's default
    statistics; returns the seconds it took. Never raises: a failure here only means the
    first view pays for it, as before."""
    t0 = time.perf_counter()
    try:
        _compare_and_frame()
        workspace = os.environ.get("STUDIO_WORKSPACE")
        if workspace:
            from kernel.store import Store
            from studio.ui.compare_reads import precompute_default_view

            store = Store(workspace)   # migrations checked once, before the first view
            precompute_default_view(store, give_way=lambda: _give_way(give_way_s))
        for page in (_datasets, _curate, _train, _evaluate, _experiments, _playground,
                     _lineage):
            _give_way(give_way_s)
            page()
    except Exception:  # noqa: BLE001 - a warm-up must never take the server down
        log.warning("studio warm-up failed; pages import on first use", exc_info=True)
    return time.perf_counter() - t0


def _give_way(limit_s: float) -> None:
    """Wait (at most limit_s) while Streamlit is drawing a page."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and any(
            t.name == SCRIPT_THREAD and t.is_alive() for t in threading.enumerate()):
        time.sleep(0.05)


def _compare_and_frame() -> None:
    import altair  # noqa: F401
    import pandas  # noqa: F401

    import evals.backends  # noqa: F401
    import evals.compare  # noqa: F401
    import evals.results  # noqa: F401
    import evals.stats  # noqa: F401
    import evals.suites  # noqa: F401
    import studio.ui.charts  # noqa: F401
    import studio.ui.compare_data  # noqa: F401
    import studio.ui.compare_reads  # noqa: F401
    import studio.ui.diff  # noqa: F401
    import studio.ui.session  # noqa: F401
    import studio.ui.status  # noqa: F401
    import studio.ui.text  # noqa: F401
    import studio.ui.widgets  # noqa: F401
    import training.checkpoints  # noqa: F401
    import training.listing  # noqa: F401


def _datasets() -> None:
    import curation.dedup  # noqa: F401
    import curation.edits  # noqa: F401
    import curation.export  # noqa: F401
    import curation.formats  # noqa: F401
    import curation.importer  # noqa: F401
    import curation.overview  # noqa: F401
    import kernel.version_names  # noqa: F401
    import studio.ui.browse  # noqa: F401
    import studio.ui.data  # noqa: F401


def _curate() -> None:
    import curation.browse  # noqa: F401
    import curation.datasets  # noqa: F401
    import curation.decontam  # noqa: F401
    import curation.filters  # noqa: F401
    import curation.scoring  # noqa: F401
    import curation.split  # noqa: F401
    import evals.metrics  # noqa: F401
    import evals.types  # noqa: F401
    import studio.ui.background  # noqa: F401


def _train() -> None:
    import kernel.jobs  # noqa: F401
    import studio.ui.forms  # noqa: F401
    import studio.ui.runs  # noqa: F401
    import studio.ui.tabs  # noqa: F401
    import studio.ui.train_form  # noqa: F401
    import training.config  # noqa: F401
    import training.merge  # noqa: F401
    import training.start_run  # noqa: F401


def _evaluate() -> None:
    import evals.jobs  # noqa: F401
    import kernel.status  # noqa: F401


def _experiments() -> None:
    import evals.experiments  # noqa: F401
    import studio.ui.experiment_forms  # noqa: F401


def _playground() -> None:
    import evals.playground  # noqa: F401
    import kernel.errors  # noqa: F401
    import kernel.store  # noqa: F401


def _lineage() -> None:
    import evals.lineage  # noqa: F401
    import studio.ui.lineage_graph  # noqa: F401
