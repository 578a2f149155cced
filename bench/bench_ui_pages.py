"""How long the studio's pages take to render: Datasets and Curate on a big dataset, Compare
on the demo's workspace.

    .venv/bin/python bench/bench_ui_pages.py [N_ROWS]      (default 1,000,000)
    .venv/bin/python bench/bench_ui_pages.py compare [WORKSPACE]

Compare: on WORKSPACE (default: the full demo's, built once with `studio demo --no-ui` into
~/.cache/studio-bench/demo, ~3 min, and reused), copied to a temp folder. Every measurement runs
in a fresh process, as a first page view on a new server does. Baseline in the same run: the
old page's path, `evals.compare.compare` with a cache-only backend for each candidate
(re-renders prompts with the tokenizer, re-scores, recomputes the statistics). Then the page
(AppTest, page logic and every query, no browser) with the statistics not yet cached (cold)
and cached (warm): first render, and a baseline change. And "warmed up": the first render
after `studio.ui.warmup.warm_up()` has imported the pages' modules, as `studio ui`'s
background thread leaves a fresh server before its first browser arrives (the warm-up's own
time is printed beside it). Wall and CPU seconds: CPU is what a loaded machine does not inflate.

Imports N synthetic rows into a temp workspace, then renders the pages in-process with
Streamlit's AppTest (page logic + every DuckDB query, no browser). Baseline in the same run:
what a naive page would do, `curation.datasets.load_rows` of the whole version. The table
browser pages in DuckDB, so its render time should stay flat as N grows, and the ratio
(baseline / page) should grow with N.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def write_rows(path: Path, n: int) -> None:
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    with path.open("w") as fh:
        for i in range(n):
            w = words[i % 8]
            fh.write(json.dumps({"instruction": f"repeat {w} {i % 997} twice",
                                 "output": f"{w} {w} " * (1 + i % 5)}) + "\n")


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main(n: int) -> None:
    from streamlit.testing.v1 import AppTest

    from curation.datasets import load_rows
    from curation.importer import import_file
    from kernel.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "big.jsonl"
        write_rows(src, n)
        store = Store(Path(tmp) / "ws")
        t_import, _ = timed(lambda: import_file(store, src, "big"))
        os.environ["STUDIO_WORKSPACE"] = str(store.workspace.root)
        pages = REPO / "studio" / "views"
        results = {}
        for name in ("datasets", "curate"):
            at = AppTest.from_file(str(pages / f"{name}.py"), default_timeout=600)
            results[name], _ = timed(at.run)
            assert not at.exception, at.exception
        at = AppTest.from_file(str(pages / "datasets.py"), default_timeout=600).run()
        t_filter, _ = timed(lambda: at.text_input(key="browse_where").input(
            "resp_chars>=20").run())
        t_page, _ = timed(lambda: at.number_input(key="browse_page").set_value(100).run())
        t_base, rows = timed(lambda: load_rows(store, "big"))
    print(f"rows                          {n:>12,}")
    print(f"import (curation)             {t_import:>10.2f} s")
    print(f"baseline: load_rows(all)      {t_base:>10.2f} s  ({len(rows):,} rows in Python)")
    for name, t in results.items():
        print(f"{name} page render         {t:>10.2f} s  ratio baseline/page {t_base / t:5.1f}x")
    print(f"filter resp_chars>=20 rerun   {t_filter:>10.2f} s  ratio {t_base / t_filter:5.1f}x")
    print(f"jump to page 100 rerun        {t_page:>10.2f} s  ratio {t_base / t_page:5.1f}x")


DEMO_CACHE = Path.home() / ".cache" / "studio-bench" / "demo"


def demo_workspace() -> Path:
    """The full demo's workspace, built once (`studio demo --no-ui`) and reused."""
    import subprocess

    if not (DEMO_CACHE / "studio.duckdb").exists():
        DEMO_CACHE.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(REPO / ".venv" / "bin" / "studio"), "demo", "--no-ui",
                        "--workspace", str(DEMO_CACHE)], check=True)
    return DEMO_CACHE


def compare_child(mode: str, ws: str) -> None:
    """One measurement in this (fresh) process; prints a JSON line of times in seconds."""
    os.environ["STUDIO_WORKSPACE"] = ws
    t_start = time.perf_counter()
    from evals.results import evaluated_by_suite
    from evals.suites import list_suites
    from kernel.store import Store

    store = Store(Path(ws))
    suites = sorted(list_suites(store), key=lambda s: (s["role"] != "task", s["name"]))
    suite = next(s["name"] for s in suites if len(evaluated_by_suite(store)[s["name"]]) >= 2)
    ckpts = evaluated_by_suite(store)[suite]
    out = {"suite": suite, "checkpoints": len(ckpts)}
    if mode == "old":
        from evals.backends import CacheOnly
        from evals.compare import compare

        for c in ckpts[1:]:
            compare(store, suite, ckpts[0], c, backend=CacheOnly("evaluate first"))
        out["old_page_path"] = time.perf_counter() - t_start
        out["old_page_path_cpu"] = time.process_time()
    else:
        from streamlit.testing.v1 import AppTest

        if mode == "cold":
            with store.transaction() as con:
                con.execute("DELETE FROM comparison_cache")
        if mode == "warmed":
            from studio.ui.warmup import warm_up

            out["warm_up"] = warm_up()
            out["warm_up_cpu"] = time.process_time()
        t_page, cpu_page = time.perf_counter(), time.process_time()
        at = AppTest.from_file(str(REPO / "studio" / "views" / "compare.py"),
                               default_timeout=600)
        t, _ = timed(at.run)
        if mode == "warmed":
            out["first_render_after_warm_up"] = time.perf_counter() - t_page
            out["first_render_after_warm_up_cpu"] = time.process_time() - cpu_page
        assert not at.exception, at.exception
        out["first_render"] = time.perf_counter() - t_start
        out["first_render_cpu"] = time.process_time()
        out["first_render_script"] = t
        cpu = time.process_time()
        out["baseline_change"], _ = timed(
            lambda: at.selectbox(key="cmp_baseline").set_value(ckpts[1]).run())
        out["baseline_change_cpu"] = time.process_time() - cpu
        assert not at.exception, at.exception
        cpu = time.process_time()     # another new baseline: its pairs' statistics are cached
        out["baseline_change_2"], _ = timed(
            lambda: at.selectbox(key="cmp_baseline").set_value(ckpts[2]).run())
        out["baseline_change_2_cpu"] = time.process_time() - cpu
        assert not at.exception, at.exception
        # a second view on the same server: imports done, the page's own work only
        import streamlit as st

        st.cache_data.clear()
        st.cache_resource.clear()
        again = AppTest.from_file(str(REPO / "studio" / "views" / "compare.py"),
                                  default_timeout=600)
        cpu = time.process_time()
        out["second_view"], _ = timed(again.run)
        out["second_view_cpu"] = time.process_time() - cpu
    print(json.dumps(out))


def bench_compare(ws: Path | None) -> None:
    import shutil
    import subprocess

    source = ws or demo_workspace()
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "ws"
        shutil.copytree(source, copy)

        def child(mode: str) -> dict:
            got = subprocess.run([sys.executable, __file__, "_compare_child", mode, str(copy)],
                                 check=True, capture_output=True, text=True,
                                 env={**os.environ, "PYTHONPATH": str(REPO)})
            return json.loads(got.stdout.strip().splitlines()[-1])

        old = child("old")
        cold, warm, warmed = child("cold"), child("warm"), child("warmed")
    base, base_cpu = old["old_page_path"], old["old_page_path_cpu"]
    print(f"workspace {source} (suite {old['suite']}, {old['checkpoints']} checkpoints); "
          f"wall s / CPU s of this process (CPU is what a loaded machine does not inflate)")
    print(f"baseline: old page path              {base:>7.2f} s / {base_cpu:6.2f} cpu  "
          "(compare() per candidate, fresh process)")
    rows = []
    for name, r in (("stats not cached", cold), ("stats cached", warm)):
        rows += [(f"first render, {name}", r["first_render"], r["first_render_cpu"]),
                 (f"baseline change, {name}", r["baseline_change"], r["baseline_change_cpu"]),
                 (f"2nd baseline change, {name}", r["baseline_change_2"],
                  r["baseline_change_2_cpu"]),
                 (f"second view, {name}", r["second_view"], r["second_view_cpu"])]
    rows.append(("first render after warm-up", warmed["first_render_after_warm_up"],
                 warmed["first_render_after_warm_up_cpu"]))
    print(f"(warm-up thread of studio ui: {warmed['warm_up']:.2f} s / "
          f"{warmed['warm_up_cpu']:.2f} cpu, before the first browser)")
    for what, wall, cpu in rows:
        print(f"{what:<36} {wall:>7.2f} s / {cpu:6.2f} cpu  ratio "
              f"baseline/page {base / wall:5.1f}x wall, {base_cpu / cpu:5.1f}x cpu")


if __name__ == "__main__":
    if sys.argv[1:2] == ["_compare_child"]:
        compare_child(sys.argv[2], sys.argv[3])
    elif sys.argv[1:2] == ["compare"]:
        bench_compare(Path(sys.argv[2]) if len(sys.argv) > 2 else None)
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
