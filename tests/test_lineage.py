"""Lineage: the version chain/tree with rows removed per step, the runs trained on each version
with their held-out metrics, and a checkpoint's way back to its curation steps."""

from __future__ import annotations

import json

import pytest

from curation.browse import filter_version
from curation.dedup import dedup
from curation.importer import import_file
from curation.split import split
from evals import lineage as L
from kernel.errors import NotFoundError
from studio.cli import main as studio_main
from training import synthetic
from training.data import write_jsonl

N_DUPS, N_SHORT = 6, 5


@pytest.fixture
def chain(store, tmp_path):
    """support: v1 import -> v2 exact dedup -> v3 filter short answers -> v4 split; plus a
    branch v-alt (a second filter on v2)."""
    rows = synthetic.generate(["repeat_twice"], 80, seed=5)
    for i, r in enumerate(rows):  # the generator repeats itself; make every row unique
        r["instruction"] += f" (item {i})"
    for r in rows[:N_SHORT]:
        r["response"] = "x"
    rows += [dict(r) for r in rows[10:10 + N_DUPS]]  # exact duplicates
    path = tmp_path / "support.jsonl"
    write_jsonl(path, rows)
    import_file(store, path, "support")
    dedup(store, "support@v1", method="exact")
    filter_version(store, "support@v2", "resp_chars>=2")
    held = split(store, "support@v3", held_out=0.2, seed=0)
    filter_version(store, "support@v2", "resp_chars>=20", out="v-alt")
    return held["ref"]


def test_chain_lists_every_step_with_its_params_and_removed_rows(store, chain):
    data = L.lineage(store, chain)
    assert data["ref"] == "support@v4"
    assert [s["operation"] for s in data["steps"]] == ["import", "dedup", "filter", "split"]
    imp, ded, fil, spl = data["steps"]
    assert imp["rows_removed"] is None and imp["n_rows"] == 80 + N_DUPS
    assert ded["rows_removed"] == N_DUPS and ded["params"]["method"] == "exact"
    assert fil["rows_removed"] == N_SHORT and "resp_chars" in json.dumps(fil["params"])
    assert spl["rows_removed"] == 0 and spl["train_rows_removed"] == spl["n_rows"] - spl["n_train"] > 0
    assert [s["depth"] for s in data["steps"]] == [0, 1, 2, 3]


def test_tree_has_the_branch_under_its_parent(store, chain):
    steps = L.dataset_tree(store, "support")["steps"]
    order = [(s["version"], s["depth"]) for s in steps]
    assert order[:2] == [("v1", 0), ("v2", 1)]
    assert ("v-alt", 2) in order and ("v4", 3) in order and len(order) == 5
    assert order.index(("v3", 2)) + 1 == order.index(("v4", 3))  # a child right under its parent


def test_cli_renders_the_chain_and_explains_bad_input(store, chain, capsys):
    ws = str(store.workspace.root)
    studio_main(["--workspace", ws, "lineage", chain])
    text = capsys.readouterr().out
    assert "support@v1" in text and "dedup" in text and f"-{N_SHORT}" in text
    studio_main(["--workspace", ws, "lineage", "support", "--json"])
    assert len(json.loads(capsys.readouterr().out)["steps"]) == 5
    with pytest.raises(NotFoundError, match="no version 'v9'"):
        L.lineage(store, "support@v9")
    with pytest.raises(NotFoundError, match="checkpoint 'nope/step-1' not found"):
        L.checkpoint_lineage(store, "nope/step-1")


@pytest.mark.slow
def test_runs_and_held_out_metrics_under_their_versions(store, chain, tiny_model, monkeypatch,
                                                        capsys):
    """Two real runs (on v2 and v4), evaluated on v4's held-out split, land under their versions;
    a checkpoint leads back to every step of its data."""
    from evals.evaluate import evaluate
    from evals.suites import suite_from_dataset
    from kernel import jobs
    from training.config import TrainConfig
    from training.start_run import launch_training

    monkeypatch.setenv("STUDIO_TORCH_THREADS", "1")
    settings = {"base_model": str(tiny_model), "max_steps": 4, "save_steps": 4, "eval_steps": 4}
    ids = {}
    for ref in ("support@v2", "support@v4"):
        ids[ref] = launch_training(store, TrainConfig(dataset=ref, **settings))
        assert jobs.wait(store, ids[ref], timeout_s=600)["state"] == "completed"
    suite_from_dataset(store, "held", chain, metrics=["exact_match", "rouge_l"])
    ckpts = [f"{ids[r]}/step-4" for r in ids]
    result = evaluate(store, "held", ckpts, backend="hf")

    steps = {s["version"]: s for s in L.lineage(store, chain)["steps"]}
    assert not steps["v1"]["runs"] and not steps["v3"]["runs"]
    for ref, run_id in ids.items():
        (run,) = steps[ref.split("@")[1]]["runs"]
        assert run["run_id"] == run_id and run["state"] == "completed"
        (ckpt,) = run["checkpoints"]
        (ev,) = ckpt["evals"]
        expected = result.summary[ckpt["id"]]["exact_match"]["mean"]
        assert ev["suite"] == "held" and ev["metrics"]["exact_match"] == pytest.approx(expected)

    back = L.checkpoint_lineage(store, f"{ids['support@v4']}/step-4")
    assert [s["operation"] for s in back["steps"]] == ["import", "dedup", "filter", "split"]
    assert back["provenance"]["dataset_ref"] == "support@v4" and back["evals"][0]["suite"] == "held"
    table = L.lineage_view(store, "support")
    assert sum(1 for r in table if r["run"]) == 2 and any("exact_match" in r["metrics"] for r in table)

    studio_main(["--workspace", str(store.workspace.root), "lineage", "--checkpoint",
                 f"{ids['support@v4']}/step-4"])
    text = capsys.readouterr().out
    assert "support@v4" in text and "dedup" in text and "eval held" in text
