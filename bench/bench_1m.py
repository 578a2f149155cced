"""1M-row benchmark: import, filtered page latency and exact dedup, each beside a baseline
measured in the same run.

Baselines: import vs DuckDB loading the same JSONL raw (no normalization: the floor; goal: at
most 2x), on two files of 1M rows: synthetic text (short and highly repetitive: DuckDB compresses
it almost for free, so the import's fixed work per row, the md5 identity, the ids, the v1
entries, weighs most) and real text (the alpaca-format rows of ../shared/data/real: English
maths, English and Chinese instructions; the instructions of each copy numbered, so no two rows
are the same; writing the text dominates both sides there); page latency vs one naive query
(all columns + count + sort in a single pass); the text-search page with the word index
(curation/search.py, built on the first search and timed apart) vs the same page scanning every
row's text (goal: under 300 ms); exact dedup vs hashing normalized text in Python (rows fetched
from the same store). The issue-9 ratios are printed together at the end.

    .venv/bin/python bench/bench_1m.py --rows 1000000 [--repeats 3] [--import-only] [--text both]
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


REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
REAL_FILES = ("alpacacleaned_gsm_8k_train.json", "llamafactory_alpaca_en_demo.json",
              "llamafactory_alpaca_zh_demo.json")


def generate_real(path: Path, n: int) -> None:
    """n rows of real instruction data: the real files' rows in turn, the instruction of the
    k-th copy prefixed with `[k] ` (distinct rows; the responses repeat, as real ones do)."""
    files = [REAL / f for f in REAL_FILES]
    if missing := [str(f) for f in files if not f.exists()]:
        raise SystemExit(f"real data absent: {', '.join(missing)} (../shared beside the repo)")
    union = " UNION ALL ".join(f"SELECT instruction, input, output FROM read_json('{f}')"
                               for f in files)
    with duckdb.connect() as con:
        con.execute(f"CREATE TABLE base AS SELECT row_number() OVER () - 1 AS k, * FROM ({union})")
        m = con.execute("SELECT count(*) FROM base").fetchone()[0]
        con.execute(f"""
            COPY (SELECT '[' || (i // {m}) || '] ' || b.instruction AS instruction, b.input,
                         b.output
                  FROM range({n}) r(i) JOIN base b ON b.k = i % {m} ORDER BY i)
            TO '{path}' (FORMAT json)""")


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


def import_ratios(tmp: Path, src: Path, args) -> tuple[tuple[float, float, list], Store]:
    """Import and raw load of `src` alternated, each repeat in a fresh workspace / file;
    returns (median import s, median raw load s, per-repeat ratios) and the first workspace."""
    tmp.mkdir()
    ratios, ours_all, raw_all, store = [], [], [], None
    for k in range(args.repeats):
        ws = Store(tmp / f"ws{k}")
        got, t_ours = timed(import_file, ws, src, "big")
        with duckdb.connect(str(tmp / f"raw{k}.duckdb")) as con:
            _, t_raw = timed(con.execute, "CREATE TABLE raw AS SELECT * FROM read_json(?)",
                             [str(src)])
        if args.chunks:
            os.environ["STUDIO_STORE_PROCESS"] = "0"
            try:
                chunked, t_chunks = timed(import_file, Store(tmp / f"wc{k}"), src, "big")
            finally:
                os.environ.pop("STUDIO_STORE_PROCESS")
            print(f"chunked import (no store process): {t_chunks:.1f}s; ratio "
                  f"{t_chunks / t_raw:.2f}x ({', '.join(f'{p} {s:.2f}' for p, s in chunked['seconds'].items())})")
        store = store or ws
        ours_all.append(t_ours)
        raw_all.append(t_raw)
        ratios.append(t_ours / t_raw)
        phases = ", ".join(f"{p} {s:.2f}" for p, s in got["seconds"].items())
        print(f"import via {got['via']}: {t_ours:.1f}s ({args.rows / t_ours:,.0f} rows/s; {phases}); raw "
              f"DuckDB load {t_raw:.1f}s; ratio ours/raw {t_ours / t_raw:.2f}x  "
              f"[{got['n_rows']} rows; load average {os.getloadavg()[0]:.1f}]", flush=True)
    return (statistics.median(ours_all), statistics.median(raw_all), ratios), store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3, help="imports and raw loads, alternated")
    ap.add_argument("--import-only", action="store_true", help="stop after the import ratio")
    ap.add_argument("--chunks", action="store_true",
                    help="also time the chunked import (no store process: STUDIO_STORE_PROCESS=0) "
                         "in each repeat, beside the default (a 1M-row file starts the store "
                         "process and imports in one transaction inside it)")
    ap.add_argument("--text", choices=("synthetic", "real", "both"), default="both",
                    help="the file(s) the import ratio is measured on (the page and dedup "
                         "benchmarks use the synthetic one)")
    args = ap.parse_args()
    print(f"CPU: {describe_line()}; duckdb {duckdb.__version__}")
    with tempfile.TemporaryDirectory(prefix="bench1m-") as tmp:
        texts = ("synthetic", "real") if args.text == "both" else (args.text,)
        summary, store = [], None
        for text in texts:
            src = Path(tmp) / f"{text}.jsonl"
            _, gen_s = timed(generate if text == "synthetic" else generate_real, src, args.rows)
            print(f"\n{text} text: rows={args.rows} file={src.stat().st_size / 1e6:.0f} MB "
                  f"(generated in {gen_s:.1f}s)")
            (ours, raw, r), ws = import_ratios(Path(tmp) / text, src, args)
            summary.append(f"  import / raw DuckDB load, {text} text = {ours:.1f}s / {raw:.1f}s "
                           f"= {ours / raw:.2f}x (median of {len(r)}; per repeat "
                           f"{min(r):.2f}-{max(r):.2f}x; goal <= 2x)")
            if text == "synthetic":
                store = ws  # its first workspace serves the page benchmarks
        if args.import_only or store is None:
            print(f"\nissue 9 import ratio ({args.rows:,} rows, {describe_line()}):\n"
                  + "\n".join(summary))
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
              + "\n".join(summary) + "\n"
              f"  text-search page, index / scan = {ts['index_ms']:.0f} ms / {ts['scan_ms']:.0f} ms"
              f" = {ts['index_ms'] / ts['scan_ms']:.2f}x  (goal: page < 300 ms)")


if __name__ == "__main__":
    main()
