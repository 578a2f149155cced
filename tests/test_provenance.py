"""Provenance: a run records the exact dataset version, content hashes, base model hash, config
and code version; checkpoints, eval results and `studio run show` carry it."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from curation.browse import filter_version
from curation.importer import import_file
from curation.split import split
from training import provenance, synthetic
from training.config import TrainConfig
from training.data import export_split, write_jsonl
from training.start_run import prepare_training


def _dataset(store, tmp_path, n=60, name="support"):
    path = tmp_path / f"{name}.jsonl"
    write_jsonl(path, synthetic.generate(["repeat_twice"], n, seed=3))
    import_file(store, path, name)
    return name


def test_rows_hash_ignores_order_and_sees_every_edit():
    rows = synthetic.generate(["repeat_twice"], 20, seed=0)
    h = provenance.rows_sha256(rows)
    assert provenance.rows_sha256(list(reversed(rows))) == h
    edited = [dict(r) for r in rows]
    edited[7]["response"] += "!"
    assert provenance.rows_sha256(edited) != h
    assert provenance.rows_sha256(rows[:-1]) != h


def test_model_hash_covers_weights_and_is_cached_by_path_mtime_size(tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    weights = model / "model.safetensors"
    weights.write_bytes(b"a" * 1000)
    cache_file = tmp_path / "cache.json"
    cache = provenance.HashCache(cache_file)
    first = provenance.model_sha256(str(model), cache)
    cache.save()
    assert first and json.loads(cache_file.read_text())  # one entry per weight file
    (model / "config.json").write_text('{"x": 1}')          # not a weight file: same hash
    assert provenance.model_sha256(str(model), provenance.HashCache(cache_file)) == first

    # Same size and mtime: the cache answers without reading (this is what makes it cheap).
    stat = weights.stat()
    weights.write_bytes(b"b" * 1000)
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert provenance.model_sha256(str(model), provenance.HashCache(cache_file)) == first
    # A new mtime: the file is read again and the hash changes.
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert provenance.model_sha256(str(model), provenance.HashCache(cache_file)) != first
    assert provenance.model_sha256(str(tmp_path / "nowhere")) is None


def test_code_version_inside_and_outside_a_git_checkout(tmp_path, monkeypatch):
    here = provenance.code_version()
    assert here["version"] and here["packages"]["torch"].startswith("2.")
    if shutil.which("git") and (provenance.Path(__file__).resolve().parents[1] / ".git").exists():
        assert len(here["git_commit"]) == 40 and isinstance(here["git_dirty"], bool)
    outside = provenance.code_version(tmp_path)           # not a checkout: no failure
    assert outside["git_commit"] is None and outside["version"] == here["version"]
    monkeypatch.setenv("PATH", str(tmp_path))              # no git at all: no failure
    assert provenance.code_version()["git_commit"] is None


def test_launch_pins_the_latest_version_and_records_everything(store, tmp_path, tiny_model):
    name = _dataset(store, tmp_path)
    v2 = filter_version(store, name, "resp_chars>=1")["ref"]
    cfg = TrainConfig(base_model=str(tiny_model), dataset=name, max_steps=2)
    resolved, train, evals = prepare_training(store, cfg)
    assert resolved.dataset == v2 and v2.endswith("@v2")   # never just the bare name

    run_dir = store.workspace.run_dir("train-x")
    run_dir.mkdir()
    export_split(run_dir, train, evals)
    prov = provenance.record(store, resolved, run_dir, train, evals)
    assert prov["dataset_ref"] == v2 and (prov["dataset"], prov["version"]) == (name, "v2")
    assert prov["rows_sha256"] == provenance.rows_sha256(train + evals)
    assert prov["train_file_sha256"] == provenance.sha256_file(run_dir / "train.jsonl")
    assert prov["base_model_sha256"] == provenance.model_sha256(str(tiny_model))
    assert prov["config"]["dataset"] == v2 and prov["config"]["max_steps"] == 2
    assert prov["n_train"] == len(train) and prov["n_eval"] == len(evals)
    assert (store.workspace.root / "cache" / provenance.HASH_CACHE_FILE).exists()

    # The store row appears once the run exists (sync heals a launcher that died in between).
    with store.transaction() as con:
        con.execute("INSERT INTO runs (id, kind, state, run_dir) VALUES (?, 'train', 'queued', ?)",
                    ["train-x", str(run_dir)])
    assert provenance.sync(store) == 1 and provenance.sync(store) == 0
    row = store.query("SELECT * FROM run_provenance WHERE run_id = 'train-x'")[0]
    assert row["dataset_ref"] == v2 and row["rows_sha256"] == prov["rows_sha256"]
    assert json.loads(row["config"])["dataset"] == v2

    # A later version does not change what this run trained on.
    filter_version(store, name, "resp_chars>=2")
    assert provenance.get(store, "train-x")["dataset_ref"] == v2


@pytest.mark.slow
def test_a_real_run_carries_provenance_to_checkpoints_evals_and_run_show(
        store, tmp_path, tiny_model, monkeypatch, capsys):
    from evals.evaluate import evaluate
    from evals.suites import suite_from_dataset
    from studio.cli import main as studio_main

    monkeypatch.setenv("STUDIO_TORCH_THREADS", "1")
    name = _dataset(store, tmp_path, n=80)
    latest = split(store, name, held_out=0.1, seed=0)["ref"]

    def cli(*args):
        capsys.readouterr()
        studio_main(["--workspace", str(store.workspace.root), *args])
        return json.loads(capsys.readouterr().out)

    out = cli("train", "--base-model", str(tiny_model), "--dataset", name, "--max-steps", "4",
              "--save-steps", "4", "--eval-steps", "4", "--wait", "--json")
    assert out["state"] == "completed", out
    shown = cli("run", "show", out["run_id"], "--json")
    prov = shown["provenance"]
    assert shown["config"]["dataset"] == latest and prov["dataset_ref"] == latest
    for key in ("rows_sha256", "train_file_sha256", "formatted_sha256", "base_model_sha256"):
        assert len(prov[key]) == 64, key
    assert prov["config"]["max_steps"] == 4 and prov["code_version"]

    ckpt = out["checkpoints"][-1]
    meta = json.loads((store.workspace.run_dir(out["run_id"]) / "checkpoints" / "step-4"
                       / "meta.json").read_text())
    assert meta["provenance"]["formatted_sha256"] == prov["formatted_sha256"]
    assert meta["provenance"]["dataset_ref"] == latest

    suite_from_dataset(store, "held", latest, metrics=["exact_match"])
    evaluate(store, "held", [ckpt, f"base:{tiny_model}"], backend="hf")
    stored = {r["checkpoint"]: r["provenance"] for r in
              store.query("SELECT checkpoint, provenance FROM eval_runs")}
    assert json.loads(stored[ckpt])["dataset_ref"] == latest
    assert json.loads(stored[ckpt])["run_id"] == out["run_id"]
    assert stored[f"base:{tiny_model}"] is None

    capsys.readouterr()
    studio_main(["--workspace", str(store.workspace.root), "run", "show", out["run_id"]])
    text = capsys.readouterr().out
    assert "provenance:" in text and latest in text and prov["rows_sha256"][:20] in text
