"""Fault injection: the real `studio` CLI run as separate processes under bad luck and hostile
input (issue 14). Asserted every time: the store is unchanged, nothing is lost, every command
still answers, errors are one line with exit code 1.

Fast tests first (export safety, names, quoting, one-line errors); the ones that kill
processes, hold locks or fill a small filesystem are marked slow.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from curation.browse import browse
from curation.export import export
from curation.importer import import_file
from curation.versions import check_name
from kernel.errors import StudioError
from kernel.store import Store
from kernel.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def studio(ws: Path | str, *args: str, timeout: float = 180, check: bool = False,
           env: dict | None = None) -> subprocess.CompletedProcess:
    """The real CLI in its own process."""
    got = subprocess.run([sys.executable, "-c", "from studio.cli import main; main()",
                          "--workspace", str(ws), *args], capture_output=True, text=True,
                         timeout=timeout, cwd=REPO, env=env or ENV)
    if check:
        assert got.returncode == 0, got.stderr
    return got


def one_line_error(got: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 1 with exactly one line on stderr, `error: ...`, naming what is at fault."""
    assert got.returncode == 1, (got.returncode, got.stderr)
    lines = got.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), got.stderr
    assert "Traceback" not in got.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def write_rows(path: Path, n: int, start: int = 0) -> Path:
    with path.open("w") as fh:
        for i in range(start, start + n):
            fh.write(json.dumps({"instruction": f"task {i} it's", "output": f"answer {i}"}) + "\n")
    return path


def snapshot(store: Store) -> dict:
    """What a user made: datasets, versions with their rows, and scores (counts and content)."""
    return {
        "datasets": store.query("SELECT name FROM datasets ORDER BY name"),
        "versions": store.query("SELECT dataset, version, n_rows FROM versions "
                                "ORDER BY dataset, version"),
        "rows": store.query("SELECT dataset, count(*) AS n, sum(hash(content_hash)) AS h "
                            "FROM rows GROUP BY 1 ORDER BY 1"),
        "version_rows": store.query("SELECT dataset, version, count(*) AS n, "
                                    "sum(hash(uid)) AS h FROM version_rows GROUP BY 1, 2 "
                                    "ORDER BY 1, 2"),
        "scores": store.query("SELECT dataset, version, count(*) AS n FROM scores "
                              "GROUP BY 1, 2 ORDER BY 1, 2"),
    }


@pytest.fixture
def ds(store, tmp_path) -> Store:
    import_file(store, write_rows(tmp_path / "d.jsonl", 50), "d")
    return store


# --- 8: export never clobbers, never follows a link, leaves no temp file ---------------------

def test_export_refuses_an_existing_file_unless_forced(ds, tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text("precious\n")
    with pytest.raises(StudioError, match="already exists; pass --force"):
        export(ds, "d", out)
    assert out.read_text() == "precious\n"
    assert export(ds, "d", out, force=True)["n_rows"] == 50
    assert len(out.read_text().splitlines()) == 50
    assert [p.name for p in tmp_path.iterdir() if ".export-" in p.name] == []


def test_export_never_writes_through_a_symlink(ds, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("do not touch\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(victim)
    dangling = tmp_path / "dangling.jsonl"
    dangling.symlink_to(tmp_path / "not-yet.txt")
    for target in (link, dangling):
        for force in (False, True):
            with pytest.raises(StudioError, match="symbolic link"):
                export(ds, "d", target, force=force)
    assert victim.read_text() == "do not touch\n"
    assert not (tmp_path / "not-yet.txt").exists() and link.is_symlink()


def test_export_removes_the_temp_file_a_killed_export_left(ds, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".out.jsonl.export-{dead.pid}-abcdef.tmp"
    stale.write_text("half a file")
    live = tmp_path / f".out.jsonl.export-{os.getpid()}-abcdef.tmp"  # an export still running
    live.write_text("being written")
    export(ds, "d", tmp_path / "out.jsonl")
    assert not stale.exists() and live.exists()


def test_export_hf_folder_is_refused_then_replaced_with_force(ds, tmp_path):
    out = tmp_path / "hf"
    export(ds, "d", out, "hf")
    with pytest.raises(StudioError, match="already exists"):
        export(ds, "d", out, "hf")
    export(ds, "d", out, "hf", force=True)
    import datasets

    assert len(datasets.load_from_disk(str(out))) == 50
    assert [p.name for p in tmp_path.iterdir() if ".export-" in p.name] == []


def test_cli_export_force_flag_and_one_line_errors(ds, tmp_path):
    ws = ds.workspace.root
    out = tmp_path / "cli.jsonl"
    studio(ws, "export", "d", str(out), check=True)
    one_line_error(studio(ws, "export", "d", str(out)), "already exists", "--force")
    studio(ws, "export", "d", str(out), "--force", check=True)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    one_line_error(studio(ws, "export", "d", str(blocker / "sub" / "out.jsonl")),
                   "cannot create folder")
    one_line_error(studio(ws, "export", "d", "/proc/studio-export.jsonl"), "/proc")


# --- 9: names, quoting, one-line errors --------------------------------------------------------

@pytest.mark.parametrize("bad", ["x\n", "x\r\n", "\nx", "a b", "", "-x", "x" * 65, "x/y"])
def test_names_are_checked_whole(bad):
    with pytest.raises(StudioError, match="invalid dataset name"):
        check_name(bad, "dataset")


def test_cli_import_refuses_a_name_with_a_trailing_newline(ds, tmp_path):
    before = snapshot(ds)
    got = studio(ds.workspace.root, "import", str(write_rows(tmp_path / "n.jsonl", 3)),
                 "--name", "sneaky\n")
    one_line_error(got, "invalid dataset name")
    assert snapshot(ds) == before


def test_where_accepts_sql_quote_doubling(ds):
    rows, total = browse(ds, "d", "text~'it''s' and instruction~'task 1'")
    assert total == 11 and all("it's" in r["instruction"] for r in rows)
    got = studio(ds.workspace.root, "browse", "d", "--where", "instruction~'3 it''s'", "--json")
    assert got.returncode == 0, got.stderr
    assert {r["instruction"] for r in json.loads(got.stdout)["rows"]} == {"task 3 it's",
                                                                          "task 13 it's",
                                                                          "task 23 it's",
                                                                          "task 33 it's",
                                                                          "task 43 it's"}


INJECTIONS = [
    ("--where", "instruction='x' or 1=1"),
    ("--where", "instruction='x'; DROP TABLE rows; --"),
    ("--where", "instruction~'x'') OR 1=1 --'"),
    ("--where", "1=1"),
    ("--where", "instruction=x) or (1=1"),
    ("--where", "messages~'' and (SELECT 1)=1"),
    ("--sort", "instruction; DROP TABLE rows"),
    ("--sort", "(SELECT 1)"),
    ("--sort", "-instruction, rowid"),
    ("--sort", "random()"),
]


@pytest.mark.parametrize("flag,value", INJECTIONS)
def test_injection_through_where_and_sort_is_refused_or_literal(ds, flag, value):
    before = snapshot(ds)
    got = studio(ds.workspace.root, "browse", "d", flag, value, "--json")
    if got.returncode == 0:  # taken as a literal: it matches nothing it should not
        assert json.loads(got.stdout)["total"] in (0, 50)
        if flag == "--where":
            assert json.loads(got.stdout)["total"] == 0
    else:
        one_line_error(got)
    assert snapshot(ds) == before


def test_corrupt_database_is_a_one_line_error(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    ws.db_path.write_bytes(os.urandom(50_000))
    for args in (["runs"], ["versions", "d"], ["browse", "d"]):
        one_line_error(studio(ws.root, *args), "studio.duckdb", "damaged")


def test_workspace_that_cannot_be_created_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    one_line_error(studio(blocker / "ws", "runs"), "cannot create folder")


# --- slow: real kills, a held lock, a full disk, two imports at once ---------------------------

def _kill_when(proc: subprocess.Popen, ready, delay: float, timeout: float = 240) -> bool:
    """SIGKILL `proc` `delay` s after `ready()` turns true; False if it finished first."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            return False
        assert time.monotonic() < deadline, "the command never reached the kill point"
        time.sleep(0.01)
    time.sleep(delay)
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


def _unchanged_or_whole(before: dict, after: dict, args) -> None:
    """After a kill: the store is as it was, or (the kill landed after the commit, while the
    process was exiting) it holds the one new version whole: every earlier thing unchanged,
    exactly one new version, and all of that version's rows."""
    if after == before:
        return
    for key, items in before.items():
        assert all(x in after[key] for x in items), (args, key)
    if args[0] != "import":
        assert after["rows"] == before["rows"], args
    new = [v for v in after["versions"] if v not in before["versions"]]
    assert len(new) == 1, (args, new)
    got = [r["n"] for r in after["version_rows"]
           if (r["dataset"], r["version"]) == (new[0]["dataset"], new[0]["version"])]
    assert got == [new[0]["n_rows"]], (args, new, got)


def _start(ws: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "from studio.cli import main; main()",
                             "--workspace", str(ws), *args], cwd=REPO, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _staging(ws: Path, name: str):
    return lambda: any((ws / "staging").glob(f"*/{name}"))


def _rows_written(store: Store, name: str):
    """True once an import's first chunk of rows is in the store (still invisible)."""
    return lambda: store.query("SELECT count(*) AS n FROM rows WHERE dataset = ?",
                               [name])[0]["n"] > 0


def _answers(ws: Path) -> None:
    """Every kind of command still answers after the fault."""
    for args in (["runs"], ["versions", "d"], ["browse", "d", "--page-size", "2"]):
        got = studio(ws, *args)
        assert got.returncode == 0, (args, got.stderr)


@pytest.mark.slow
def test_kill_9_during_import_score_and_dedup_changes_nothing(ds, tmp_path):
    """kill -9 at several points of each long write: the store stays as it was (what the dead
    writer staged is swept by the next command), and the operation then succeeds in full."""
    ws = ds.workspace.root
    big = write_rows(tmp_path / "big.jsonl", 30_000, start=100)
    import_file(ds, write_rows(tmp_path / "s.jsonl", 30_000, start=100), "s")
    kills = 0
    points = [
        (("import", str(big)), lambda: True, 0.5),                          # reading the source
        (("import", str(big)), _rows_written(ds, "big1"), 0.0),             # writing chunks
        (("import", str(big)), _rows_written(ds, "big2"), 0.3),
        (("score", "s"), _staging(ws, "base-00000.parquet"), 0.0),          # copying the text
        (("score", "s"), _staging(ws, "scores-2.parquet"), 0.3),            # writing scores
        (("dedup", "s"), lambda: True, 1.0),
    ]
    for i, (args, ready, delay) in enumerate(points):
        if args[0] == "import":
            args = (*args, "--name", f"big{i}")
        before = snapshot(ds)
        proc = _start(ws, *args)
        killed = _kill_when(proc, ready, delay)
        kills += killed
        if killed:
            _answers(ws)
            _unchanged_or_whole(before, snapshot(ds), args)
            assert not ds.query("SELECT * FROM staged_writes")
        else:  # it finished before the kill point: then it must be whole
            assert proc.returncode == 0, proc.stderr.read()
    assert kills >= 3, "too few kills landed mid-operation to test anything"
    studio(ws, "import", str(big), "--name", "big", check=True)  # nothing in the way
    assert ds.query("SELECT n_rows FROM versions WHERE dataset = 'big'") == [{"n_rows": 30_000}]
    studio(ws, "score", "s", check=True)
    studio(ws, "dedup", "s", check=True)


@pytest.mark.slow
def test_two_imports_at_once_both_land(store, tmp_path):
    a = write_rows(tmp_path / "a.jsonl", 20_000)
    b = write_rows(tmp_path / "b.jsonl", 20_000, start=20_000)
    procs = [_start(store.workspace.root, "import", str(a), "--name", "a"),
             _start(store.workspace.root, "import", str(b), "--name", "b")]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()
    got = store.query("SELECT dataset, count(*) AS n, count(DISTINCT uid) AS u, "
                      "count(DISTINCT rid) AS r FROM rows GROUP BY 1 ORDER BY 1")
    assert got == [{"dataset": "a", "n": 20_000, "u": 20_000, "r": 20_000},
                   {"dataset": "b", "n": 20_000, "u": 20_000, "r": 20_000}]
    assert store.query("SELECT count(DISTINCT rid) AS r FROM rows")[0]["r"] == 40_000


@pytest.mark.slow
def test_held_lock_makes_commands_wait_not_fail(ds):
    code = textwrap.dedent(f"""
        import duckdb, time
        con = duckdb.connect({str(ds.path)!r})
        print("locked", flush=True)
        time.sleep(3)
    """)
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    try:
        t0 = time.monotonic()
        _answers(ds.workspace.root)
        assert time.monotonic() - t0 >= 2.0  # it really waited for the holder
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.slow
def test_corrupt_run_files_leave_every_command_answering(ds):
    ws = ds.workspace.root
    runs = ds.workspace.runs_dir
    for name, content in {"list": b"[]", "binary": b"\xff\xfe\x00", "gone": None}.items():
        (runs / name).mkdir()
        if content is not None:
            (runs / name / "status.json").write_bytes(content)
            (runs / name / "metrics.jsonl").write_bytes(b'{"step": 1}\n\xff\n{"step": 2}\n')
        with ds.transaction() as con:
            con.execute("INSERT INTO runs (id, kind, state, pid, config, run_dir) "
                        "VALUES (?, 'train', 'running', 999999999, '{}', ?)",
                        [name, str(runs / name)])
        if content is None:
            (runs / name).rmdir()
    got = studio(ws, "runs", "--json")
    assert got.returncode == 0, got.stderr
    assert {r["id"]: r["state"] for r in json.loads(got.stdout)} == {
        "list": "failed", "binary": "failed", "gone": "failed"}
    for name in ("list", "binary", "gone"):
        assert studio(ws, "run", "show", name, "--json").returncode == 0
    _answers(ws)


@contextlib.contextmanager
def small_fs(path: Path, size: str):
    """A real tmpfs of `size` at `path`, or skip with the reason when mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    got = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                         capture_output=True, text=True)
    if got.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({got.stderr.strip() or 'not root'})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.mark.slow
def test_full_disk_during_import_leaves_the_workspace_usable(tmp_path):
    """Item 6: the workspace's disk fills up mid-import: one-line error, the store as it was
    (its file no bigger than before plus DuckDB's slack), every command still answers, and
    after freeing space the import works."""
    with small_fs(tmp_path / "small", "40m") as mnt:
        ws = mnt / "ws"
        store = Store(Workspace.open(ws))
        import_file(store, write_rows(tmp_path / "d.jsonl", 50), "d")
        before = snapshot(store)
        size = (ws / "studio.duckdb").stat().st_size
        filler = mnt / "filler"
        with filler.open("wb") as fh:  # leave ~6 MB free
            free = os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize
            fh.write(b"\0" * max(0, free - 6 * 2**20))
        big = write_rows(tmp_path / "big.jsonl", 200_000)
        line = one_line_error(studio(ws, "import", str(big), "--name", "big"), "disk is full")
        assert "Traceback" not in line
        _answers(ws)
        assert snapshot(store) == before
        # The failed import's chunks were deleted and checkpointed: DuckDB drops their full
        # row groups and truncates the file's free tail; a row group shared with the rows
        # already there keeps its deleted rows' blocks (measured: 0 to 1.8 MB here, varying
        # with where the disk ran out). The one-transaction import grew the file by all the
        # free space (~6 MB), so that the next write failed too.
        grown = (ws / "studio.duckdb").stat().st_size - size
        print(f"file size before {size}, grown by {grown} bytes")
        assert grown <= 3 * 2**20, grown
        filler.unlink()
        studio(ws, "import", str(write_rows(tmp_path / "m.jsonl", 2_000)), "--name", "m",
               check=True)
