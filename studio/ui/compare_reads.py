"""The Compare page's reads, memoized per server until the store file changes.

Opening the DuckDB file costs ~15-30 ms a time and a page view made ten of them (suites, run
names, evaluated checkpoints, the results stamp, the suite, the results, the statistics), so
a baseline change spent most of its time opening the file. Everything here is keyed on
`store_stamp`, the size and modification time of the database file and its write-ahead log:
any committed write changes one of them, so a cached value is never older than the file,
and checking it is two `stat` calls instead of a query. What does not depend on the
baseline (the page's lists, the per-example results of the chosen checkpoints) is kept across
baseline changes; a new baseline reads only the cached statistics of its pairs.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from evals.compare import compare_stored
from evals.results import StoredResults, evaluated_by_suite, stored_results
from evals.suites import list_suites
from kernel.store import Store
from training.listing import run_names


def store_stamp(store: Store) -> tuple:
    """(size, mtime_ns) of the database file and of its write-ahead log (0s when absent)."""
    out = []
    for path in (store.path, Path(f"{store.path}.wal")):
        try:
            st_ = os.stat(path)
            out += [st_.st_size, st_.st_mtime_ns]
        except FileNotFoundError:
            out += [0, 0]
    return tuple(out)


def suites_in_page_order(store: Store) -> list[dict]:
    """Task suites first: what the run should improve is what a reviewer opens first."""
    return sorted(list_suites(store), key=lambda s: (s["role"] != "task", s["name"]))


def default_view(store: Store) -> tuple[str, list[str]] | None:
    """The suite Compare opens on and its evaluated checkpoints (None when no suite has two)."""
    ready = evaluated_by_suite(store)
    for suite in suites_in_page_order(store):
        if len(ready.get(suite["name"], [])) >= 2:
            return suite["name"], ready[suite["name"]]
    return None


def precompute_default_view(store: Store, give_way=lambda: None) -> int:
    """Compute (into the store's comparison cache, unless there already) the statistics of
    the default suite with each of its checkpoints as the baseline, the page's default first:
    the first view and every baseline change then read them. Returns the pairs covered."""
    view = default_view(store)
    if view is None:
        return 0
    suite, checkpoints = view
    stored = stored_results(store, suite, checkpoints)
    for baseline in checkpoints:
        give_way()
        compare_stored(store, suite, baseline, [c for c in checkpoints if c != baseline],
                       stored=stored)
    return len(checkpoints) * (len(checkpoints) - 1)


@st.cache_data(show_spinner=False, max_entries=16)
def page_index(ws: str, stamp: tuple) -> dict:
    """Suites (task suites first), run names and the checkpoints evaluated on each suite."""
    store = Store(Path(ws))
    return {"suites": suites_in_page_order(store), "run_names": run_names(store),
            "ready": evaluated_by_suite(store)}


@st.cache_resource(show_spinner=False, max_entries=8)
def results_of(ws: str, suite: str, checkpoints: frozenset[str], stamp: tuple) -> StoredResults:
    """Per-example results of a set of checkpoints: the same set whatever the baseline (a new
    baseline swaps with a candidate), so a baseline change reuses them. Read-only after."""
    return stored_results(Store(Path(ws)), suite, sorted(checkpoints))


@st.cache_data(show_spinner="Comparing…", max_entries=64)
def comparisons(ws: str, suite: str, baseline: str, candidates: tuple[str, ...],
                stamp: tuple) -> list[dict]:
    """Baseline vs each candidate (`evals.compare.compare_stored`); the statistics themselves
    are cached in the store, so a fresh server reads them instead of recomputing."""
    stored = results_of(ws, suite, frozenset((baseline, *candidates)), stamp)
    return [c.to_dict() for c in compare_stored(Store(Path(ws)), suite, baseline,
                                                list(candidates), stored=stored)]
