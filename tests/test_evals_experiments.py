"""The experiments table and the playground on real runs: two tiny LoRA runs of one seed group
trained for a few steps, one evaluated; a third queued behind them (one CPU job per
workspace) is the "rest of the group" that gets cancelled."""

from __future__ import annotations

import dataclasses
import json

import pytest

from curation.importer import import_file
from curation.split import split
from evals import experiments as X
from evals import playground as P
from evals.types import SamplingConfig
from kernel.errors import NotFoundError, StudioError
from studio.cli import main as studio_main
from training import synthetic
from training.data import write_jsonl


def _dataset(store, tmp_path) -> str:
    rows = synthetic.generate(["repeat_twice"], 40, seed=3)
    path = tmp_path / "support.jsonl"
    write_jsonl(path, rows)
    import_file(store, path, "support")
    return split(store, "support", held_out=0.2, seed=0)["ref"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory, tiny_model):
    """A workspace with a seed group of two finished runs (seeds 0, 1; the first evaluated on
    the held-out split) and a lone run with another learning rate."""
    from evals.evaluate import evaluate
    from evals.suites import suite_from_dataset
    from kernel import jobs
    from kernel.store import Store
    from kernel.workspace import Workspace
    from training.config import TrainConfig
    from training.start_run import launch_group, launch_training

    mp = pytest.MonkeyPatch()
    mp.setenv("STUDIO_TORCH_THREADS", "1")
    tmp = tmp_path_factory.mktemp("lab")
    store = Store(Workspace.open(tmp / "ws"))
    ref = _dataset(store, tmp)
    cfg = TrainConfig(base_model=str(tiny_model), dataset="support", name="grp", max_steps=4,
                      save_steps=2, eval_steps=2, logging_steps=1, report_to=["none"])
    group_id, run_ids = launch_group(store, cfg, [0, 1])
    lone = launch_training(store, dataclasses.replace(cfg, name="lone", learning_rate=5e-4,
                                                      seed=7))
    for run_id in [*run_ids, lone]:
        assert jobs.wait(store, run_id, timeout_s=600)["state"] == "completed"
    suite_from_dataset(store, "held", ref, metrics=["exact_match", "token_f1"])
    evaluate(store, "held", [f"{run_ids[0]}/step-4"], backend="hf")
    yield {"store": store, "group": group_id, "runs": run_ids, "lone": lone, "ref": ref,
           "model": str(tiny_model), "cfg": cfg}
    mp.undo()


pytestmark = pytest.mark.slow


def test_every_run_with_group_version_config_and_metrics(lab):
    store, (a, b), lone = lab["store"], lab["runs"], lab["lone"]
    rows = {r["run_id"]: r for r in X.experiments(store)}
    assert set(rows) == {a, b, lone}
    assert rows[a]["group_id"] == rows[b]["group_id"] == lab["group"] and rows[a]["group"] == "grp"
    assert rows[lone]["group_id"] is None
    for r in rows.values():
        assert r["dataset"] == "support@v2"  # the bare name was pinned to the exact version
        assert r["state"] == "completed" and r["max_steps"] == 4
        assert r["base_model"] == lab["model"] and r["checkpoint"].endswith("/step-4")
    assert (rows[a]["seed"], rows[b]["seed"], rows[lone]["seed"]) == (0, 1, 7)
    assert rows[lone]["learning_rate"] == 5e-4 and rows[a]["learning_rate"] == 1e-3
    assert rows[a]["evaluated_checkpoint"] == f"{a}/step-4"
    assert set(rows[a]["metrics"]) == {"held/exact_match", "held/token_f1"}
    assert 0 <= rows[a]["metrics"]["held/token_f1"] <= 1
    assert rows[b]["metrics"] == {} and rows[b]["evaluated_checkpoint"] is None
    # sortable by metric: evaluated runs first
    ordered = X.sort_by_metric(list(rows.values()), "held/token_f1")
    assert ordered[0]["run_id"] == a
    flat = X.table(list(rows.values()))
    assert all("held/exact_match" in r for r in flat)


def test_config_diff_of_two_runs(lab):
    rows = {r["run_id"]: r for r in X.experiments(lab["store"])}
    diff = {d["field"]: (d["a"], d["b"]) for d in X.config_diff(rows[lab["runs"][0]],
                                                                rows[lab["lone"]])}
    assert diff["learning_rate"] == (1e-3, 5e-4) and diff["seed"] == (0, 7)
    assert "lora_r" not in diff and "base_model" not in diff
    assert X.config_diff({"a": 1, "opt": {"x": 1}}, {"a": 1, "opt": {"x": 2}, "b": 3}) == [
        {"field": "b", "a": None, "b": 3}, {"field": "opt.x", "a": 1, "b": 2}]


def test_loss_curves_of_two_runs(lab):
    a, lone = lab["runs"][0], lab["lone"]
    points = X.loss_curves(lab["store"], [a, lone])
    train = [p for p in points if p["series"] == "loss"]
    assert {p["run_id"] for p in train} == {a, lone}
    assert sorted({p["step"] for p in train if p["run_id"] == a}) == [1, 2, 3, 4]
    assert any(p["series"] == "eval_loss" for p in points)
    assert all(p["value"] > 0 for p in points)
    with pytest.raises(NotFoundError, match="run 'nope' not found"):
        X.loss_curves(lab["store"], ["nope"])


def test_cancel_rest_of_a_group_leaves_finished_runs(lab, tmp_path):
    """A second group whose first run holds the CPU lock while the second waits queued; cancel
    the rest: both stop, the finished group is untouched."""
    from kernel import jobs
    from training.start_run import launch_group

    store = lab["store"]
    cfg = dataclasses.replace(lab["cfg"], name="long", max_steps=400, save_steps=400,
                              eval_steps=400)
    group_id, run_ids = launch_group(store, cfg, [0, 1])
    cancelled = X.cancel_rest(store, group_id)
    assert sorted(cancelled) == sorted(run_ids)
    assert {jobs.get_run(store, r)["state"] for r in run_ids} == {"cancelled"}
    assert {jobs.get_run(store, r)["state"] for r in lab["runs"]} == {"completed"}
    with pytest.raises(StudioError, match="no queued or running run left"):
        X.cancel_rest(store, group_id)
    with pytest.raises(NotFoundError, match="run group 'group-nope' not found"):
        X.cancel_rest(store, "group-nope")


def test_playground_answers_from_checkpoint_and_base_as_evaluation_does(lab):
    store, a = lab["store"], lab["runs"][0]
    ckpt = f"{a}/step-4"
    base = P.base_of(store, ckpt)
    assert base == f"base:{lab['model']}"
    chat = P.open_chat(store, [base, ckpt], backend="hf")
    messages = [{"role": "user", "content": "Say apple two times."}]
    first = chat.reply(messages, SamplingConfig(max_new_tokens=8))
    assert [r.checkpoint for r in first] == [base, ckpt]
    assert all(0 < r.n_tokens <= 8 for r in first)
    # greedy is deterministic; the adapter changes the model, so the answers are its own
    again = chat.reply(messages, SamplingConfig(max_new_tokens=8))
    assert [r.text for r in again] == [r.text for r in first]
    sampled = chat.reply(messages, SamplingConfig(max_new_tokens=8, temperature=1.0, seed=3),
                         checkpoints=[ckpt])
    assert len(sampled) == 1 and sampled[0].checkpoint == ckpt
    chat.close()


def test_playground_rejects_bad_conversations(lab):
    with pytest.raises(StudioError, match="the conversation is empty"):
        P.check_messages([])
    with pytest.raises(StudioError, match="last message must be the user's"):
        P.check_messages([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}])
    with pytest.raises(StudioError, match="message 1: field 'role'"):
        P.check_messages([{"role": "bot", "content": "hi"}])
    with pytest.raises(NotFoundError, match="checkpoint 'nope/step-1' not found"):
        P.open_chat(lab["store"], ["nope/step-1"])


def test_cli_experiments_and_chat(lab, capsys):
    ws = str(lab["store"].workspace.root)
    a = lab["runs"][0]
    studio_main(["--workspace", ws, "experiments", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert {r["run_id"] for r in data["runs"]} >= {a, lab["lone"]}
    assert data["metrics"] == ["held/exact_match", "held/token_f1"]
    studio_main(["--workspace", ws, "experiments", "--sort", "held/token_f1"])
    text = capsys.readouterr().out
    assert a in text and "support@v2" in text
    studio_main(["--workspace", ws, "chat", f"{a}/step-4", "Say apple two times.",
                 "--with-base", "--max-new-tokens", "6", "--json"])
    replies = json.loads(capsys.readouterr().out)["replies"]
    assert [r["checkpoint"] for r in replies] == [f"{a}/step-4", f"base:{lab['model']}"]
