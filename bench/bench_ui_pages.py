"""How long the studio's Datasets and Curate pages take to render on a big dataset.

    .venv/bin/python bench/bench_ui_pages.py [N_ROWS]      (default 1,000,000)

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
    from curation.store import Store

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


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
