"""The curation CLI end to end: JSON output, one-line errors with exit 1, real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from studio.cli import main

DATA = Path(__file__).parent / "data"
STUDIO = Path(sys.executable).parent / "studio"


def run(capsys, ws: Path, *args: str) -> tuple[int, str, str]:
    code = 0
    try:
        main(["--workspace", str(ws), *args])
    except SystemExit as exc:
        code = exc.code or 0
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, ws: Path, *args: str):
    code, out, err = run(capsys, ws, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def test_cli_workflow(capsys, tmp_path):
    ws = tmp_path / "ws"
    got = run_json(capsys, ws, "import", str(DATA / "alpaca.jsonl"), "--name", "a")
    assert got["n_rows"] == 3 and got["format"] == "alpaca"
    assert [d["name"] for d in run_json(capsys, ws, "datasets")] == ["a"]
    assert run_json(capsys, ws, "show", "a@v1")["n_rows"] == 3
    run_json(capsys, ws, "score", "a")
    f = run_json(capsys, ws, "filter", "a", "--where", "resp_chars>=3 and refusal=0", "--out", "f")
    assert f["ref"] == "a@f" and f["n_rows"] == 2
    d = run_json(capsys, ws, "dedup", "a", "--method", "exact", "--out", "dd")
    assert d["n_flagged"] == 0
    s = run_json(capsys, ws, "split", "a", "--held-out", "0.5", "--seed", "1")
    assert s["n_train"] + s["n_heldout"] == 2
    assert [v["version"] for v in run_json(capsys, ws, "versions", "a")] == \
        ["v1", "v2", "f", "dd", "v3"]
    diff = run_json(capsys, ws, "diff", "a@v1", "a@f")
    assert diff["removed"] == 1 and diff["removed_ids"] == ["a2"]
    page = run_json(capsys, ws, "browse", "a", "--where", "split='heldout'")
    assert page["total"] == 1
    out = tmp_path / "a.parquet"
    assert run_json(capsys, ws, "export", "a", str(out), "--format", "parquet")["n_rows"] == 2
    assert run_json(capsys, ws, "import", str(out), "--name", "back")["n_rows"] == 2
    hist = run_json(capsys, ws, "hist", "a", "resp_chars", "--bins", "2")
    assert sum(hist["counts"]) == 2
    code, text, _ = run(capsys, ws, "show", "a")
    assert code == 0 and "operation" in text and "split" in text


def test_cli_near_dedup_clusters_and_keep(capsys, tmp_path):
    ws = tmp_path / "ws"
    f = tmp_path / "n.jsonl"
    text = "the quick brown fox jumps over the lazy dog near the river bank today"
    f.write_text("\n".join(json.dumps(r) for r in [
        {"id": "x", "instruction": text, "output": "ok"},
        {"id": "y", "instruction": text + " again", "output": "ok"},
        {"id": "z", "instruction": "something else entirely", "output": "fine"}]) + "\n")
    run_json(capsys, ws, "import", str(f), "--name", "n")
    got = run_json(capsys, ws, "dedup", "n", "--method", "near", "--threshold", "0.7")
    assert got["n_clusters"] == 1 and got["n_flagged"] == 1
    cl = run_json(capsys, ws, "clusters", got["ref"])
    cid = cl["clusters"][0]["cluster"]
    assert {m["id"] for m in cl["clusters"][0]["members"]} == {"x", "y"}
    kept = run_json(capsys, ws, "keep", got["ref"], f"{cid}=y")
    assert kept["n_flagged"] == 1
    code, text_out, _ = run(capsys, ws, "clusters", kept["ref"], "--cluster", cid)
    assert code == 0 and "True" in text_out


@pytest.mark.parametrize("args,message", [
    (["import", "missing.jsonl", "--name", "m"], "missing.jsonl: file not found"),
    (["show", "ghost"], "dataset 'ghost' does not exist"),
    (["filter", "a", "--where", "resp_chars>>3"], "resp_chars is a number"),
    (["filter", "a", "--where", "resp_chars 3"], "filter: cannot parse"),
    (["dedup", "a", "--keep", "score:q"], "no score 'q'"),
    (["import", str(DATA / "chat.jsonl"), "--name", "a"], "already exists"),
])
def test_cli_errors_are_one_line_exit_1(capsys, tmp_path, args, message):
    ws = tmp_path / "ws"
    run_json(capsys, ws, "import", str(DATA / "alpaca.jsonl"), "--name", "a")
    code, out, err = run(capsys, ws, *args)
    assert code == 1 and out == ""
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


@pytest.mark.slow
def test_concurrent_cli_processes_share_a_workspace(tmp_path):
    """Three real `studio` processes import and read at once: none fails on the lock."""
    ws = tmp_path / "ws"
    env = {**os.environ, "STUDIO_WORKSPACE": str(ws)}
    procs = [subprocess.Popen([str(STUDIO), "import", str(DATA / name), "--name", ds, "--json"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name, ds in [("alpaca.jsonl", "p1"), ("chat.jsonl", "p2"), ("qa.csv", "p3")]]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [r[1] for r in results]
    listing = subprocess.run([str(STUDIO), "datasets", "--json"], env=env, capture_output=True,
                             text=True, timeout=60)
    assert listing.returncode == 0
    assert sorted(d["name"] for d in json.loads(listing.stdout)) == ["p1", "p2", "p3"]
