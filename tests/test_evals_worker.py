"""Eval job files (prepare -> worker -> ingest) and the contamination check."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from evals.contamination import find_contamination
from evals.eval_worker import ingest, is_ingested, prepare, run
from evals.suites import Suite, save_suite
from evals.types import SamplingConfig
from kernel.errors import StudioError
from tests.helpers.fixtures import make_lora_adapter

ROWS = [{"id": f"r{i}", "messages": [{"role": "user", "content": f"reverse {w}"},
                                     {"role": "assistant", "content": w[::-1]}]}
        for i, w in enumerate(["apple", "river", "stone", "cloud", "tiger", "lemon"])]


def test_contamination_flags_exact_and_near_copies():
    sentence = "please write the word {} three times separated by commas and then stop"
    train = [{"id": f"t{i}", "instruction": sentence.format(w), "response": f"{w}, {w}, {w}"}
             for i, w in enumerate(["apple", "river", "stone", "cloud"])]
    heldout = [
        {"id": "copy", "instruction": sentence.format("river"), "response": "river, river, river"},
        {"id": "near", "instruction": sentence.format("stone") + " now",
         "response": "stone, stone, stone"},
        {"id": "clean", "instruction": "add 3 and 4", "response": "7"},
    ]
    flagged = {f["row_id"]: f for f in find_contamination(heldout, train, threshold=0.6)}
    assert set(flagged) == {"copy", "near"}
    assert flagged["copy"]["train_id"] == "t1" and flagged["copy"]["similarity"] == 1.0
    assert flagged["near"]["train_id"] == "t2" and 0.6 <= flagged["near"]["similarity"] < 1.0


@pytest.fixture
def job(store, tiny_model, tmp_path):
    adapter = make_lora_adapter(tiny_model, tmp_path / "ad", seed=5, scale=0.3)
    save_suite(store, Suite(name="w", rows=ROWS, metrics=["exact_match", "chrf"],
                            sampling=SamplingConfig(max_new_tokens=8)))
    return store, [f"base:{tiny_model}", str(adapter)], tmp_path / "run"


def test_prepare_run_ingest_in_process(job):
    store, ckpts, run_dir = job
    req = prepare(store, run_dir, "w", ckpts, backend="hf", backend_options={"batch_size": 4})
    assert len(req["items"]) == 2 * len(ROWS)
    with pytest.raises(StudioError, match="has not finished"):
        ingest(store, run_dir)
    assert run(run_dir) == 2 * len(ROWS)
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "completed" and status["done"] == status["total"] == 12
    assert store.query("SELECT count(*) AS n FROM generations")[0]["n"] == 0   # worker: no DB
    assert not is_ingested(run_dir)
    res = ingest(store, run_dir)
    assert is_ingested(run_dir)  # so the UI and the CLI never store the same job twice
    assert set(res.scores) == set(ckpts) and res.generation.n_generated == 0
    assert store.query("SELECT count(*) AS n FROM generations")[0]["n"] == 12
    assert prepare(store, tmp := run_dir.parent / "run2", "w", ckpts)["items"] == []
    assert tmp.exists()


@pytest.mark.slow
def test_worker_as_detached_module(job):
    store, ckpts, run_dir = job
    prepare(store, run_dir, "w", ckpts, backend="hf")
    proc = subprocess.run([sys.executable, "-m", "evals.eval_worker", str(run_dir)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = (run_dir / "generations.jsonl").read_text().splitlines()
    assert len(lines) == 12 and json.loads(lines[0])["backend"] == "hf"
    res = ingest(store, run_dir)
    assert res.summary[ckpts[0]]["exact_match"]["n"] == len(ROWS)


@pytest.mark.slow
def test_cli_eval_detached_job_then_ingest(job, capsys):
    """`studio eval --detach` runs evals.eval_worker through kernel.jobs; eval-ingest scores it."""
    from kernel.jobs import wait
    from studio.cli import main

    store, ckpts, _ = job
    ws = str(store.workspace.root)
    main(["-w", ws, "eval", "--suite", "w", "--checkpoint", ckpts[0], "--checkpoint", ckpts[1],
          "--detach", "--json"])
    run_id = json.loads(capsys.readouterr().out)["run_id"]
    run = wait(store, run_id, timeout_s=300)
    assert run["state"] == "completed", run.get("error")
    assert store.query("SELECT count(*) AS n FROM generations")[0]["n"] == 0
    main(["-w", ws, "eval-ingest", run_id, "--json"])
    data = json.loads(capsys.readouterr().out)
    assert data["n"] == len(ROWS) and set(data["results"]) == set(ckpts)
    assert store.query("SELECT count(*) AS n FROM generations")[0]["n"] == 12
