"""Out-of-fold noisy-label scores (`training.oof`, `studio score --scorer oof-loss`) on real runs.

The point of the method is that no row is scored by a model that trained on it; the slow test
checks exactly that on two real LoRA runs of the tiny model, and that the stored scores are the
response losses of the held-out fold under its fold model.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from curation.datasets import load_rows, show
from curation.importer import import_file
from curation.model_scores import ModelScoreConfig, response_losses
from curation.noisy_labels import OOF_FOLD_SCORE, OOF_SCORE, drop_high_loss, row_losses
from kernel import jobs
from kernel.errors import StudioError
from training.checkpoints import resolve
from training.config import TrainConfig
from training.data import read_jsonl
from training.oof import assign_folds, score_out_of_fold
from training.synthetic import generate


def test_folds_are_stratified_seeded_and_cover_every_row():
    rows = [{"id": f"{c}-{i}", "category": c} for c in ("a", "b") for i in range(31)]
    folds = assign_folds(rows, 3, seed=0)
    assert set(folds) == {r["id"] for r in rows} and set(folds.values()) == {0, 1, 2}
    for cat in ("a", "b"):  # every fold holds about a third of every task
        sizes = [sum(1 for i, f in folds.items() if i.startswith(cat) and f == k) for k in range(3)]
        assert max(sizes) - min(sizes) <= 1
    assert assign_folds(rows, 3, seed=0) == folds
    assert assign_folds(rows, 3, seed=1) != folds
    with pytest.raises(StudioError, match="folds must be >= 2"):
        assign_folds(rows, 1, seed=0)


def _import_noisy(store, tmp_path, n: int = 24) -> list[dict]:
    rows = generate(["last_word", "join_dash"], n, seed=3)
    path = tmp_path / "d.jsonl"
    recs = []
    for i, r in enumerate(rows):
        resp = r["response"] if i % 4 else "zzz wrong"  # a quarter planted wrong
        recs.append({"id": f"r{i:03d}", "instruction": r["instruction"], "output": resp,
                     "category": r["category"]})
    path.write_text("".join(json.dumps(x) + "\n" for x in recs))
    import_file(store, path, "d")
    return recs


def test_oof_needs_enough_rows(store, tmp_path, tiny_model):
    _import_noisy(store, tmp_path, n=2)
    cfg = TrainConfig(base_model=str(tiny_model), max_steps=2, packing=False)
    with pytest.raises(StudioError, match="too few for 3 folds"):
        score_out_of_fold(store, "d", cfg, folds=3)


@pytest.mark.slow
def test_oof_scores_each_row_with_the_model_that_never_saw_it(store, tmp_path, tiny_model):
    recs = _import_noisy(store, tmp_path)
    cfg = TrainConfig(base_model=str(tiny_model), max_steps=12, batch_size=8, packing=False,
                      learning_rate=2e-3, seed=0)
    got = score_out_of_fold(store, "d", cfg, folds=2, seed=0, out="oof")
    assert got["ref"] == "d@oof" and got["scores"] == [OOF_SCORE, OOF_FOLD_SCORE]
    assert got["n_rows"] == len(recs)

    scored = {r["id"]: r["loss"] for r in row_losses(store, "d@oof")}  # the default score
    assert set(scored) == {r["id"] for r in recs}
    assert all(math.isfinite(v) and v > 0 for v in scored.values())
    by_id = {r["id"]: r for r in load_rows(store, "d")}
    for run in got["runs"]:
        state = jobs.get_run(store, run["run_id"])
        assert state["state"] == "completed"
        trained = {r["id"] for r in read_jsonl(Path(state["run_dir"]) / "train.jsonl")}
        held = sorted(set(by_id) - trained)
        assert len(held) == run["n_scored"] and len(trained) == run["n_train"]
        assert run["losses"] and all(math.isfinite(x) for x in run["losses"])
        # the fold model's own response loss on the rows it never trained on = the stored score
        model = resolve(store, run["checkpoint"])
        cond, _ = response_losses(ModelScoreConfig(model=model.base_model,
                                                   adapter=model.adapter_path, max_length=512),
                                  [by_id[i]["messages"] for i in held])
        for i, v in zip(held, cond, strict=True):
            assert math.isclose(scored[i], v, rel_tol=1e-4), i
    folds_of = [set(by_id) - {r["id"] for r in read_jsonl(
        Path(jobs.get_run(store, x["run_id"])["run_dir"]) / "train.jsonl")} for x in got["runs"]]
    assert folds_of[0].isdisjoint(folds_of[1]) and folds_of[0] | folds_of[1] == set(by_id)
    # each row carries the fold whose model scored it (denoise cuts per fold model)
    fold_of = {r["id"]: r["fold"] for r in row_losses(store, "d@oof")}
    assert all(fold_of[i] == k for k, held in enumerate(folds_of) for i in held)

    params = show(store, "d@oof")["params"]
    params = params if isinstance(params, dict) else json.loads(params)
    assert params["scorer"] == "oof-loss" and params["folds"] == 2
    assert params["runs"] == [r["run_id"] for r in got["runs"]]
    out = drop_high_loss(store, "d@oof", group_by="none", min_group=5)  # denoise's default score
    assert out["score"] == OOF_SCORE and out["n_scored"] == len(recs)


def _import_clean(store, tmp_path, n: int) -> list[dict]:
    rows = generate(["last_word", "join_dash"], n, seed=5)
    path = tmp_path / "c.jsonl"
    recs = [{"id": f"c{i:03d}", "instruction": r["instruction"], "output": r["response"],
             "category": r["category"]} for i, r in enumerate(rows)]
    path.write_text("".join(json.dumps(x) + "\n" for x in recs))
    import_file(store, path, "c")
    return recs


@pytest.mark.slow
def test_a_fold_model_that_did_not_learn_a_task_is_retrained_once(store, tmp_path, tiny_model):
    """Two optimizer steps teach nothing: every task's held-out losses stay flat (no spread),
    so each fold is trained once more with the next seed, and each task keeps whichever of
    the two models' losses spread more; with retry=False nothing is retrained."""
    recs = _import_clean(store, tmp_path, n=48)      # 24 held-out rows per task and fold
    cfg = TrainConfig(base_model=str(tiny_model), max_steps=2, batch_size=8, packing=False,
                      learning_rate=1e-4, seed=7)
    got = score_out_of_fold(store, "c", cfg, folds=2, seed=0, out="oof")
    by_id = {r["id"]: r for r in load_rows(store, "c")}
    scored = {r["id"]: r["loss"] for r in row_losses(store, "c@oof")}
    assert set(scored) == {r["id"] for r in recs}
    for run in got["runs"]:
        retry = run["retry"]
        assert retry and set(retry["tasks"]) == {"last_word", "join_dash"}, run
        assert jobs.get_run(store, retry["run_id"])["config"]["seed"] == cfg.seed + 1
        assert jobs.get_run(store, run["run_id"])["config"]["seed"] == cfg.seed
        held = [i for i, r in by_id.items() if i not in {x["id"] for x in read_jsonl(
            Path(jobs.get_run(store, run["run_id"])["run_dir"]) / "train.jsonl")}]
        for task, t in retry["tasks"].items():
            assert t["used"] == (t["retry_spread"] > t["spread"])
            # the stored losses are the response losses under the model the task kept
            model = resolve(store, retry["checkpoint"] if t["used"] else run["checkpoint"])
            ids = [i for i in held if by_id[i]["category"] == task]
            cond, _ = response_losses(ModelScoreConfig(model=model.base_model,
                                                       adapter=model.adapter_path, max_length=512),
                                      [by_id[i]["messages"] for i in ids])
            assert [scored[i] for i in ids] == pytest.approx(list(cond), rel=1e-4), task
    params = show(store, "c@oof")["params"]
    params = params if isinstance(params, dict) else json.loads(params)
    assert {int(k) for k in params["retries"]} == {0, 1}
    plain = score_out_of_fold(store, "c", cfg, folds=2, seed=0, out="oof-plain", retry=False)
    assert all(run["retry"] is None for run in plain["runs"])
