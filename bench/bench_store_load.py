"""The store under load: how long do readers wait while an import, a score and a training job run?

Goal (issue 14, item 5): with an N-row import, an N-row heuristic score and a training job
running at once, 10 concurrent reader processes see p95 wait under 0.5 s and no read fails.

Modes, measured in the same run on fresh workspaces with the same data:
  new    today's default: the file lock (FIFO ticket queue, kernel.fairlock, chunked writes
         in turns, kernel.staging) until a write passes one row group, which then starts the
         workspace's store process (kernel.store_server) for the rest and for every reader;
  server today's code with the store process already running (as `studio ui` and
         `studio store serve` start it): every connect() goes to the one process that holds
         the file, each client on its own cursor (DuckDB's MVCC: readers do not wait);
  lock   today's file lock alone (STUDIO_STORE_PROCESS=0: no store process);
  old    the behaviour before: no queue (retry with random exponential backoff up to 0.5 s),
         the whole import and the whole score inside one transaction (kept below as
         `legacy_import` / `legacy_score`, the previous code of curation.importer/scoring);
  floor  the readers alone on the file lock (no writers, no job): the cost of opening the
         file on this machine at this moment.

A reader loops: ask for a connection, run two small queries (datasets, runs), close, sleep
50 ms. Its *wait* is the time from asking to the first query's answer.

    .venv/bin/python bench/bench_store_load.py --rows 200000
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import multiprocessing as mp
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from curation import heuristics, importer, readers  # noqa: E402
from curation import versions as V  # noqa: E402
from curation.datasets import resolve_ref as _resolve  # noqa: E402
from curation.importer import import_file  # noqa: E402
from curation.scoring import score  # noqa: E402
from kernel import store_client  # noqa: E402
from kernel.errors import WorkspaceBusyError  # noqa: E402
from kernel.machine import describe_line  # noqa: E402
from kernel.store import Store, _is_lock_error  # noqa: E402
from kernel.workspace import Workspace  # noqa: E402

N_READERS = 10


# --- the old behaviour, kept for the comparison ------------------------------------------------

class LegacyStore(Store):
    """Store.connect as it was: no queue, retry with random exponential backoff (max 0.5 s)."""

    @contextlib.contextmanager
    def connect(self, timeout_s: float | None = None, read_only: bool = False):  # noqa: ARG002
        deadline = time.monotonic() + (timeout_s or self.lock_timeout_s)
        delay = 0.02
        while True:
            try:
                con = duckdb.connect(str(self.path))
                break
            except duckdb.IOException as exc:
                if not _is_lock_error(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise WorkspaceBusyError(f"busy: {exc}") from exc
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 0.5)
        con.execute("SET enable_progress_bar = false")
        try:
            yield con
        finally:
            con.close()


def legacy_import(store: Store, path: Path, name: str) -> None:
    """The previous import_file: read, normalize and insert inside one transaction (the same
    SQL as today's import, which runs it off the store and writes in chunks)."""
    kind = readers.source_kind(path)
    source = str(path.resolve())
    with store.transaction() as con:
        readers.stage(con, path, kind)
        fmt, used = importer._detect(con, source, kind, None, None)
        importer._normalize(con, fmt, used,
                            keep_messages=fmt not in importer.formats.FLAT_FORMATS)
        importer._first_error(con, source, kind)
        changes, info = importer._changes(con, fmt, used)
        every_row = importer._final_rows(con, name, fmt, info["split_from_source"]).read_all()
        con.register("_chunk", every_row)
        for sql, args in importer._write_chunk(name, source):
            con.execute(sql, args)
        n = every_row.num_rows
        con.execute("INSERT INTO datasets (name, source, format, mapping) VALUES (?, ?, ?, ?)",
                    [name, source, fmt, json.dumps(used)])
        con.execute("INSERT INTO versions (dataset, version, parent, operation, params, n_rows) "
                    "VALUES (?, 'v1', NULL, 'import', ?, ?)",
                    [name, json.dumps({"source": source, "changes": changes}), n])


def legacy_score(store: Store, ref: str) -> None:
    """The previous heuristic scorer: signals computed and stored inside one transaction."""
    sql, params = heuristics.signals_sql()
    cols = ", ".join(heuristics.NUMERIC)
    with store.transaction() as con:
        dataset, version = _resolve(con, ref)
        con.execute("CREATE TEMP TABLE _base AS SELECT vr.uid, vr.rid, coalesce(r.instruction, "
                    "'') AS i, coalesce(r.response, '') AS o FROM version_rows vr JOIN rows r "
                    "ON r.uid = vr.uid WHERE vr.dataset = ? AND vr.version = ?",
                    [dataset, version])
        con.execute(f"CREATE TEMP TABLE _sig AS {sql}", params)
        name = V.create_version(con, dataset, version, "score", {"scorer": "heuristic"},
                                V.parent_rows_sql(), [dataset, version], None)
        con.execute(f"INSERT INTO scores (dataset, version, uid, name, value, rid) "
                    f"SELECT ?, ?, uid, name, value, rid FROM (UNPIVOT (SELECT uid, rid, {cols} "
                    f"FROM _sig) ON {cols} INTO NAME name VALUE value) ORDER BY name, rid",
                    [dataset, name])
        con.execute("INSERT INTO scores (dataset, version, uid, name, value, label, rid) "
                    "SELECT ?, ?, uid, 'lang', lang_conf, lang, rid FROM _sig ORDER BY rid",
                    [dataset, name])


# --- processes -----------------------------------------------------------------------------

def _store(ws: str, mode: str) -> Store:  # floor and new: today's Store
    cls = LegacyStore if mode == "old" else Store
    return cls(Workspace.open(ws), lock_timeout_s=300)


class _Probe:
    """Where a connect() block's time goes, per outermost block of this process: waiting in the
    queue, opening the file, the work inside, closing it (DuckDB checkpoints on the close of
    the last connection). Patches this process's `kernel.store` only (the bench's own)."""

    def __init__(self, store: Store):
        import kernel.store as ks

        self.events: list[dict] = []
        self._cur: dict | None = None
        probe, real_duckdb, db = self, duckdb, str(store.path)

        class _Con:
            def __init__(self, con):
                self._con = con

            def __getattr__(self, name):
                return getattr(self._con, name)

            def close(self):
                t0 = time.perf_counter()
                self._con.close()
                if probe._cur is not None:
                    probe._cur["close"] = time.perf_counter() - t0
                    probe._cur["work"] = t0 - probe._cur.pop("_opened")

        class _Duck:
            def __getattr__(self, name):
                return getattr(real_duckdb, name)

            def connect(self, path=":memory:", *args, **kwargs):
                t0 = time.perf_counter()
                con = real_duckdb.connect(path, *args, **kwargs)
                if str(path) != db or probe._cur is None:
                    return con
                probe._cur["open"] = probe._cur.get("open", 0.0) + time.perf_counter() - t0
                probe._cur["_opened"] = time.perf_counter()
                return _Con(con)

        ks.duckdb = _Duck()
        queue = getattr(store, "_queue", None)
        if queue is not None:
            turn = queue.turn

            @contextlib.contextmanager
            def timed_turn(deadline, shared=False):
                t0 = time.perf_counter()
                outer = probe._cur is None
                with turn(deadline, shared) as got:
                    if outer:
                        probe._cur = {"queue": time.perf_counter() - t0, "shared": shared}
                    try:
                        yield got
                    finally:
                        if outer:
                            probe._cur.pop("_opened", None)
                            self.events.append(probe._cur)
                            probe._cur = None

            queue.turn = timed_turn


def _breakdown(events: list[dict]) -> dict:
    """Medians and p95 of each part of the outermost connect() blocks."""
    out = {"n": len(events)}
    for part in ("queue", "open", "work", "close"):
        xs = sorted(e.get(part, 0.0) for e in events)
        if xs:
            out[part] = (statistics.median(xs), xs[int(0.95 * (len(xs) - 1))], sum(xs))
    return out


def reader(ws: str, mode: str, stop_file: str, out_file: str) -> None:
    store = _store(ws, mode)
    probe = _Probe(store)
    waits, failures = [], []
    while not os.path.exists(stop_file):
        t0 = time.perf_counter()
        try:
            with store.read() as con:
                con.execute("SELECT name FROM datasets").fetchall()
                waits.append(time.perf_counter() - t0)
                con.execute("SELECT id, state FROM runs ORDER BY created_at DESC LIMIT 20").fetchall()
        except Exception as exc:  # noqa: BLE001 - a failed read is what we count
            failures.append(f"{type(exc).__name__}: {str(exc)[:200]}")
        time.sleep(0.05)
    Path(out_file).write_text(json.dumps({"waits": waits, "failures": failures,
                                          "events": probe.events}))


def _timing_holds(store: Store, holds: list[float]) -> None:
    """Record how long each outermost connect() of `store` holds the file (open to closed)."""
    connect = store.connect
    depth = [0]

    @contextlib.contextmanager
    def timed(*args, **kwargs):
        depth[0] += 1
        t0 = None
        try:
            with connect(*args, **kwargs) as con:
                t0 = time.perf_counter()
                yield con
        finally:
            depth[0] -= 1
            if t0 is not None and depth[0] == 0:
                holds.append(time.perf_counter() - t0)

    store.connect = timed


def writer(ws: str, mode: str, what: str, src: str, out_file: str) -> None:
    store = _store(ws, mode)
    probe = _Probe(store)
    holds: list[float] = []
    _timing_holds(store, holds)
    t0 = time.perf_counter()
    if what == "import":
        (legacy_import if mode == "old" else lambda s, p, n: import_file(s, p, n))(
            store, Path(src), "incoming")
    else:
        (legacy_score if mode == "old" else lambda s, r: score(s, r))(store, "base")
    Path(out_file).write_text(json.dumps({"seconds": time.perf_counter() - t0,
                                          "holds": holds, "events": probe.events}))


def generate(path: Path, n: int) -> None:
    """n instruction rows of varied length (the shape of bench_1m's data)."""
    with duckdb.connect() as con:
        con.execute(f"""COPY (SELECT 'Write about topic ' || i || ' using words ' || md5(i::VARCHAR)
                AS instruction, '' AS input,
                'Answer ' || i || ': ' || repeat('lorem ipsum ', i % 30) AS output
              FROM range({n}) t(i)) TO '{path}' (FORMAT json)""")


def start_training(store: Store) -> tuple[str | None, str]:
    """A real training job on the cached tiny model when there is one, else a CPU burner."""
    models = sorted(glob.glob(str(REPO / ".cache" / "tiny-model-test-*" / "config.json")))
    if models:
        from training import synthetic
        from training.config import TrainConfig
        from training.data import write_jsonl
        from training.start_run import launch_training

        data = store.workspace.root / "train.jsonl"
        write_jsonl(data, synthetic.generate(["repeat_twice"], 200, seed=1))
        cfg = TrainConfig(base_model=str(Path(models[-1]).parent), data_file=str(data),
                          max_steps=100000, save_steps=100000, eval_steps=100000,
                          logging_steps=5)
        return launch_training(store, cfg), "training job (tiny model, 1 torch thread)"
    proc = mp.get_context("spawn").Process(target=_burn, daemon=True)
    proc.start()
    return None, f"CPU-burning stand-in process (pid {proc.pid}; no cached tiny model)"


def _burn() -> None:
    while True:
        sum(i * i for i in range(10000))


def run_mode(mode: str, src: Path, n: int, tmp: Path) -> dict:
    """`floor`: the new code with the readers alone (no writers, no job) for 20 s: what opening
    the file costs on this machine right now, the least any mode can reach."""
    ws = tmp / f"ws-{mode}"
    os.environ["STUDIO_STORE_PROCESS"] = "0"  # the setup starts no store process
    store = Store(Workspace.open(ws), lock_timeout_s=300)
    import_file(store, src, "base")  # the dataset to score (setup, not measured)
    run_id, trainer = (None, "none") if mode == "floor" else start_training(store)
    if mode in ("new", "server"):  # the processes this mode spawns inherit it
        os.environ.pop("STUDIO_STORE_PROCESS")
    try:
        if mode == "server" and not store_client.start_server(ws, parent=os.getpid()):
            raise SystemExit(f"the store process of {ws} did not start (see its locks/ log)")
        return _measure(mode, src, tmp, ws, trainer)
    finally:  # also when the bench is stopped: no training job or store process left behind
        _stop_store_process(ws)  # mode server's, or the one a big write started (mode new)
        if run_id:
            from kernel import jobs

            with contextlib.suppress(Exception):
                jobs.cancel(store, run_id, grace_s=5)


def _stop_store_process(ws: Path) -> None:
    pid = store_client.server_pid(ws)
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def _measure(mode: str, src: Path, tmp: Path, ws: Path, trainer: str) -> dict:
    time.sleep(0.0 if mode == "floor" else 3.0)  # let the job start
    ctx = mp.get_context("spawn")
    stop = tmp / f"stop-{mode}"
    readers_ = [ctx.Process(target=reader, args=(str(ws), mode, str(stop), str(tmp / f"r{mode}{i}")), daemon=True)
                for i in range(N_READERS)]
    for p in readers_:
        p.start()
    time.sleep(1.0)
    writers = [ctx.Process(target=writer, args=(str(ws), mode, w, str(src), str(tmp / f"w{mode}{w}")), daemon=True)
               for w in ("import", "score") if mode != "floor"]
    t0 = time.perf_counter()
    for p in writers:
        p.start()
    for p in writers:
        p.join()
    if mode == "floor":
        time.sleep(20.0)
    elapsed = time.perf_counter() - t0
    stop.write_text("stop")
    for p in readers_:
        p.join(timeout=600)
    waits, failures, reader_events = [], [], []
    for i in range(N_READERS):
        got = json.loads((tmp / f"r{mode}{i}").read_text())
        waits += got["waits"]
        failures += got["failures"]
        reader_events += got["events"]
    written = {w: json.loads((tmp / f"w{mode}{w}").read_text())
               for w in ("import", "score") if (tmp / f"w{mode}{w}").exists()}
    writes = {w: got["seconds"] for w, got in written.items()}
    holds = sorted(h for got in written.values() for h in got["holds"])
    q = statistics.quantiles(waits, n=100) if len(waits) > 1 else [0.0] * 99
    return {"mode": mode, "reads": len(waits), "failures": len(failures),
            "failure_examples": failures[:3], "p50": q[49], "p95": q[94], "p99": q[98],
            "max": max(waits, default=0.0), "elapsed_s": elapsed, "writes_s": writes,
            "holds": len(holds), "hold_p95": holds[int(0.95 * (len(holds) - 1))] if holds else 0.0,
            "hold_max": holds[-1] if holds else 0.0,
            "load": trainer, "parts": {"readers": _breakdown(reader_events),
                                       **{w: _breakdown(got["events"]) for w, got in written.items()}}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--modes", default="new,server,lock,old,floor")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanups on `timeout`
    os.environ.setdefault("STUDIO_TORCH_THREADS", "1")
    tmp = Path(tempfile.mkdtemp(prefix="bench-store-load-"))
    try:
        src = tmp / "src.jsonl"
        generate(src, args.rows)
        results = [run_mode(m, src, args.rows, tmp) for m in args.modes.split(",")]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nCPU: {describe_line()}, load average {os.getloadavg()[0]:.1f}; "
          f"{args.rows:,} rows imported and {args.rows:,} scored at once, {N_READERS} reader "
          f"processes, load: {results[0]['load']}")
    print(f"{'mode':<5} {'reads':>6} {'fail':>5} {'p50 s':>7} {'p95 s':>7} {'p99 s':>7} "
          f"{'max s':>7} {'import s':>9} {'score s':>8} {'holds':>6} {'hold p95':>9} {'hold max':>9}")
    for r in results:
        print(f"{r['mode']:<5} {r['reads']:>6} {r['failures']:>5} {r['p50']:>7.3f} {r['p95']:>7.3f} "
              f"{r['p99']:>7.3f} {r['max']:>7.2f} {r['writes_s'].get('import', float('nan')):>9.1f} "
              f"{r['writes_s'].get('score', float('nan')):>8.1f} {r['holds']:>6} "
              f"{r['hold_p95']:>9.3f} {r['hold_max']:>9.3f}")
        for who, b in r["parts"].items():
            print(f"      {who:<8} {b['n']:>5} blocks; median/p95/total s: " + "  ".join(
                f"{k} {v[0]:.3f}/{v[1]:.3f}/{v[2]:.1f}" for k, v in b.items() if k != "n"))
        for example in r["failure_examples"]:
            print(f"      failure: {example}")
    by = {r["mode"]: r for r in results}
    for mode in ("new", "server", "lock"):
        if mode in by and by[mode]["p95"] > 0:
            base = f"old/{mode} p95 = {by['old']['p95'] / by[mode]['p95']:.1f}x; " if "old" in by else ""
            met = by[mode]["p95"] < 0.5 and not by[mode]["failures"]
            print(f"{mode}: {base}goal p95 < 0.5 s and 0 failures: {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
