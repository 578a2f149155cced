"""1M-row benchmark: import, filtered page latency and exact dedup, each beside a baseline
measured in the same run.

Baselines: import vs DuckDB loading the same JSONL raw (no normalization: the floor; goal: at
most 2x); page latency vs one naive query (all columns + count + sort in a single pass); the
text-search page with the word index (curation/search.py, built on the first search and timed
apart) vs the same page scanning every row's text (goal: under 300 ms); exact dedup vs hashing
normalized text in Python (rows fetched from the same store). The two issue-9 ratios are
printed together at the end.

    .venv/bin/python bench/bench_1m.py --rows 1000000 [--repeats 3] [--import-only]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import statistics
import tempfile
import time
import unicodedata
from pathlib import Path

import duckdb

from curation import search
from curation.browse import browse
from curation.dedup import dedup
from curation.importer import import_file
from kernel.machine import describe_line
from kernel.store import Store


def generate(path: Path, n: int) -> None:
    """n rows; the last 5% repeat earlier rows in upper case with extra whitespace."""
    uniq = int(n * 0.95)
    with duckdb.connect() as con:
        con.execute(f"""
            COPY (SELECT
                CASE WHEN i < {uniq} THEN 'Write about topic ' || i || ' using words ' || md5(i::VARCHAR)
                     ELSE upper('Write about topic ' || (i - {uniq}) || ' using words '
                                || md5((i - {uniq})::VARCHAR)) || '  ' END AS instruction,
                '' AS input,
                CASE WHEN i < {uniq} THEN 'Answer ' || i || ': ' || repeat('lorem ipsum ', i % 30)
                     ELSE 'ANSWER ' || (i - {uniq}) || ': ' || repeat('lorem ipsum ', (i - {uniq}) % 30)
                     END AS output,
                ['easy', 'hard', 'medium'][1 + i % 3] AS category
              FROM range({n}) t(i)) TO '{path}' (FORMAT json)""")


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def naive_page(store: Store, where_sql: str, params: list, order: str) -> int:
    with store.connect() as con:
        rows = con.execute(
            "SELECT r.*, vr.split, vr.is_dup, count(*) OVER () AS total FROM version_rows vr "
            f"JOIN rows r ON r.uid = vr.uid WHERE vr.dataset = 'big' AND vr.version = 'v1' "
            f"AND {where_sql} ORDER BY {order} LIMIT 50 OFFSET 100", params).fetchall()
    return len(rows)


def python_exact_dedup(store: Store) -> int:
    with store.connect() as con:
        got = con.execute("SELECT r.uid, r.instruction, r.response FROM version_rows vr JOIN rows r "
                          "ON r.uid = vr.uid WHERE vr.dataset = 'big' AND vr.version = 'v1'"
                          ).fetchall()
    seen, dups = set(), 0
    pat = re.compile(r"\s+")  # the same normalization as exact dedup: NFKC, case, whitespace
    for _, i, o in got:
        text = unicodedata.normalize("NFKC", f"{i}\n{o}").lower()
        h = hashlib.md5(pat.sub(" ", text).strip().encode()).digest()
        dups += h in seen
        seen.add(h)
    return dups


def text_search_pages(store: Store, where: str, sort: str, repeats: int = 3) -> dict:
    """Page latency of a text search: index built (first search), then index vs scan."""
    _, build = timed(browse, store, "big", where, sort, 1, 50)
    t_index, t_scan = [], []
    for _ in range(repeats):
        (rows, total), t = timed(browse, store, "big", where, sort, 1, 50)
        t_index.append(t)
    limit = search.MIN_ROWS_FOR_INDEX
    search.MIN_ROWS_FOR_INDEX = 10**12  # the same browse call, scanning
    try:
        for _ in range(repeats):
            (rows_scan, total_scan), t = timed(browse, store, "big", where, sort, 1, 50)
            t_scan.append(t)
    finally:
        search.MIN_ROWS_FOR_INDEX = limit
    assert (rows_scan, total_scan) == (rows, total), "index and scan disagree"
    return {"first_ms": build * 1e3, "index_ms": statistics.median(t_index) * 1e3,
            "scan_ms": statistics.median(t_scan) * 1e3, "total": total}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3, help="imports and raw loads, alternated")
    ap.add_argument("--import-only", action="store_true", help="stop after the import ratio")
    ap.add_argument("--chunks", action="store_true",
                    help="also time the chunked import (no store process: STUDIO_STORE_PROCESS=0) "
                         "in each repeat, beside the default (a 1M-row file starts the store "
                         "process and imports in one transaction inside it)")
    args = ap.parse_args()
    print(f"CPU: {describe_line()}; duckdb {duckdb.__version__}")
    with tempfile.TemporaryDirectory(prefix="bench1m-") as tmp:
        src = Path(tmp) / "big.jsonl"
        _, gen_s = timed(generate, src, args.rows)
        print(f"rows={args.rows} file={src.stat().st_size / 1e6:.0f} MB (generated in {gen_s:.1f}s)")

        # import and raw load alternate, each repeat in a fresh workspace / file
        ratios, ours_all, raw_all, store = [], [], [], None
        for k in range(args.repeats):
            ws = Store(Path(tmp) / f"ws{k}")
            got, t_ours = timed(import_file, ws, src, "big")
            with duckdb.connect(str(Path(tmp) / f"raw{k}.duckdb")) as con:
                _, t_raw = timed(con.execute, "CREATE TABLE raw AS SELECT * FROM read_json(?)",
                                 [str(src)])
            if args.chunks:
                os.environ["STUDIO_STORE_PROCESS"] = "0"
                try:
                    chunked, t_chunks = timed(import_file, Store(Path(tmp) / f"wc{k}"), src, "big")
                finally:
                    os.environ.pop("STUDIO_STORE_PROCESS")
                print(f"chunked import (no store process): {t_chunks:.1f}s; ratio "
                      f"{t_chunks / t_raw:.2f}x ({', '.join(f'{p} {s:.2f}' for p, s in chunked['seconds'].items())})")
            store = store or ws  # the first workspace serves the page benchmarks
            ours_all.append(t_ours)
            raw_all.append(t_raw)
            ratios.append(t_ours / t_raw)
            phases = ", ".join(f"{p} {s:.2f}" for p, s in got["seconds"].items())
            print(f"import via {got['via']}: {t_ours:.1f}s ({args.rows / t_ours:,.0f} rows/s; {phases}); raw "
                  f"DuckDB load {t_raw:.1f}s; ratio ours/raw {t_ours / t_raw:.2f}x  "
                  f"[{got['n_rows']} rows; load average {os.getloadavg()[0]:.1f}]", flush=True)
        ours, raw = statistics.median(ours_all), statistics.median(raw_all)

        if args.import_only:
            print(f"\nimport / raw DuckDB load ({args.rows:,} rows, {describe_line()}): "
                  f"{ours:.1f}s / {raw:.1f}s = {ours / raw:.2f}x (median of {len(ratios)}; "
                  f"per repeat {min(ratios):.2f}-{max(ratios):.2f}x; goal <= 2x)")
            return
        ts = text_search_pages(store, "text~'topic 4242' and resp_chars>=10", "-resp_chars")
        print(f"text search page (index): first search {ts['first_ms']:.0f} ms (builds the "
              f"index), then {ts['index_ms']:.0f} ms; scan {ts['scan_ms']:.0f} ms "
              f"[{ts['total']} matches]")

        cases = [
            ("text search", "text~'topic 4242'", "-resp_chars",
             "contains(lower(concat_ws(chr(10), r.instruction, r.response)), ?)", ["topic 4242"],
             "length(r.response) DESC"),
            ("length range", "resp_chars>=100 and resp_chars<200", "resp_chars",
             "length(r.response) >= ? AND length(r.response) < ?", [100, 200],
             "length(r.response)"),
            ("category, page 3", "category='hard'", None, "r.category = ?", ["hard"],
             "r.source_line"),
            ("no filter", None, None, "TRUE", [], "r.source_line"),
        ]
        print(f"{'filtered page (50 rows)':<26} {'ours ms':>8} {'naive ms':>9} {'ratio':>6} {'total':>8}")
        for label, where, sort, nsql, nparams, norder in cases:
            t_ours, t_naive, total = [], [], 0
            for _ in range(3):
                (rows, total), t = timed(browse, store, "big", where, sort, 3, 50)
                t_ours.append(t)
                _, t = timed(naive_page, store, nsql, nparams, norder)
                t_naive.append(t)
            o, nv = statistics.median(t_ours) * 1e3, statistics.median(t_naive) * 1e3
            print(f"{label:<26} {o:>8.0f} {nv:>9.0f} {nv / o:>5.1f}x {total:>8}")

        d, t_dedup = timed(dedup, store, "big", "exact")
        n_py, t_py = timed(python_exact_dedup, store)
        print(f"exact dedup: {t_dedup:.1f}s, {d['n_flagged']} flagged in {d['n_clusters']} clusters; "
              f"Python hashing baseline {t_py:.1f}s ({n_py} dups); ratio {t_py / t_dedup:.1f}x")
        print(f"\nissue 9 ratios ({args.rows:,} rows, {describe_line()}):\n"
              f"  import / raw DuckDB load = {ours:.1f}s / {raw:.1f}s = {ours / raw:.2f}x "
              f"(median of {len(ratios)}; per repeat {min(ratios):.2f}-{max(ratios):.2f}x; "
              f"goal <= 2x)\n"
              f"  text-search page, index / scan = {ts['index_ms']:.0f} ms / {ts['scan_ms']:.0f} ms"
              f" = {ts['index_ms'] / ts['scan_ms']:.2f}x  (goal: page < 300 ms)")


if __name__ == "__main__":
    main()
