"""Sweeps: grid parsing and validation, random sampling and budget, successive halving's
decisions, the winner's statistics on constructed per-example scores with a known answer, run
groups of each kind, and one CI-sized real sweep on the tiny model through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from curation.importer import import_file
from evals import sweep as S
from evals.experiments import experiments
from evals.experiments import table as experiments_table
from evals.suites import Suite, save_suite
from evals.sweep_winner import pick_winner
from kernel.errors import NotFoundError, StudioError
from studio.cli import main as studio_main
from training import synthetic
from training.config import TrainConfig
from training.data import write_jsonl
from training.groups import (
    add_member,
    cancel_group,
    get_group,
    list_groups,
    record_group,
    run_groups_by_run,
)

# --- the grid ---------------------------------------------------------------------------------

def test_parse_grid_types_values_and_resolves_aliases():
    axes = S.parse_grid(["lora_r=8,16", "lr=1e-4,3e-4", "packing=true,false",
                         "target_modules=all-linear,q_proj+v_proj"], ["d@v1", "d@v2"])
    assert axes == {"lora_r": [8, 16], "learning_rate": [1e-4, 3e-4], "packing": [True, False],
                    "target_modules": [["all-linear"], ["q_proj", "v_proj"]],
                    "dataset": ["d@v1", "d@v2"]}
    assert len(S.expand(axes)) == 2 * 2 * 2 * 2 * 2
    assert S.expand({"a": [1, 2], "b": ["x"]}) == [{"a": 1, "b": "x"}, {"a": 2, "b": "x"}]


@pytest.mark.parametrize("items, message", [
    (["lora_rank=8,16"], "grid lora_rank: not a TrainConfig field"),
    (["seed=1,2"], "grid seed: not a sweep axis (list the seeds instead)"),
    (["lora_r"], "grid 'lora_r': expected FIELD=V1,V2"),
    (["lora_r="], "grid lora_r=: give at least one value"),
    (["lora_r=8,8"], "grid lora_r: value 8 is repeated"),
    (["lr=1e-4", "learning_rate=2e-4"], "grid learning_rate: given twice"),
])
def test_parse_grid_rejects_bad_keys_naming_them(items, message):
    with pytest.raises(StudioError, match=message.replace("(", r"\(").replace(")", r"\)")):
        S.parse_grid(items)


@pytest.mark.parametrize("items, message", [
    (["lora_r=8,7"], "grid lora_r=7: lora_r 7 is not a rank vLLM can serve"),
    (["lr=1e-4,fast"], "grid learning_rate=fast: field learning_rate: 'fast' is not a float"),
    (["packing=maybe"], "grid packing=maybe: expected true or false"),
    (["lora_dropout=0.1,1.5"], "grid lora_dropout=1.5: lora_dropout must be in"),
])
def test_bad_values_are_refused_before_anything_runs_naming_the_value(items, message):
    spec = S.SweepSpec(name="s", suite="held", axes=S.parse_grid(items))
    with pytest.raises(StudioError, match=message.replace("[", r"\[")):
        S.plan(TrainConfig(), spec)


def test_random_sample_and_budget():
    axes = S.parse_grid(["lora_r=8,16,32", "lr=1e-4,2e-4,3e-4,4e-4"])
    full = S.plan(TrainConfig(), S.SweepSpec(name="s", suite="h", axes=axes))
    assert len(full) == 12
    spec = S.SweepSpec(name="s", suite="h", axes=axes, random=5, sample_seed=3)
    sample = S.plan(TrainConfig(), spec)
    assert len(sample) == 5 and all(c in full for c in sample)
    assert S.plan(TrainConfig(), spec) == sample                       # seeded: reproducible
    others = [S.plan(TrainConfig(), S.SweepSpec(name="s", suite="h", axes=axes, random=5,
                                                sample_seed=k)) for k in range(4, 9)]
    assert any(o != sample for o in others)                           # and really random
    with pytest.raises(StudioError, match="random sample of 13: the grid has only 12 configs"):
        S.plan(TrainConfig(), S.SweepSpec(name="s", suite="h", axes=axes, random=13))
    with pytest.raises(StudioError, match=r"budget 10: the sweep needs 12 configs x 2 seed\(s\) "
                                          r"= 24 runs; sample at random 5"):
        S.plan(TrainConfig(), S.SweepSpec(name="s", suite="h", axes=axes, seeds=[0, 1],
                                          budget=10))
    assert len(S.plan(TrainConfig(), S.SweepSpec(name="s", suite="h", axes=axes, seeds=[0, 1],
                                                 budget=10, random=5))) == 5
    with pytest.raises(StudioError, match="give at least two values"):
        S.plan(TrainConfig(), S.SweepSpec(name="s", suite="h", axes={"lora_r": [8]}))


# --- successive halving -----------------------------------------------------------------------

def test_halving_stops_runs_outside_the_best_share_at_each_rung():
    losses = {"a": {10: 1.0, 20: 0.8, 30: 0.7},    # finished first: nothing to compare with
              "b": {10: 1.2},                      # worse than a at rung 10
              "c": {10: 0.9, 20: 0.85},            # best at 10; worse than a at 20
              "d": {10: 1.1}}
    stops = S.halving_stops(losses, active={"b", "c", "d"}, eta=2, last_step=30)
    # rung 10: n = 4, keep 2 (c 0.9, a 1.0): d (3rd) and b (4th) stop; c stops at rung 20 (2nd of 2)
    assert [(s["run_id"], s["step"], s["rank"], s["n"]) for s in stops] == [
        ("b", 10, 4, 4), ("c", 20, 2, 2), ("d", 10, 3, 4)]
    # eta 4 keeps 1 of 4 at rung 10 -> c continues there; the last step is never a rung
    assert S.halving_stops({"a": {30: 9.0}, "b": {30: 1.0}}, {"a"}, 2, 30) == []
    assert S.halving_stops({"a": {10: 1.0}}, {"a"}, 2, 30) == []      # alone: kept
    # per-run last steps (max_steps as an axis): b's step 10 is its last, not a rung
    assert S.halving_stops({"a": {10: 1.0}, "b": {10: 2.0}}, {"b"}, 2, {"a": 30, "b": 10}) == []
    assert S.halving_stops({"a": {10: 1.0}, "b": {10: 1.0}}, {"b"}, 2, 30) == []  # tie: kept


def _member_folder(runs_dir, run_id: str, group: str | None, losses: dict[int, float]):
    from kernel.status import append_metrics
    from training.halving import write_settings

    folder = runs_dir / run_id
    folder.mkdir(parents=True)
    if group:
        write_settings(folder, group, eta=2)
    for step, loss in losses.items():
        append_metrics(folder, {"step": step, "loss": loss + 0.5})   # a train line first
        append_metrics(folder, {"step": step, "eval_loss": loss})
    return folder


def _evaluate(folder, step: int, eval_loss: float, max_steps: int = 30):
    """What the Trainer does after an evaluation: the run's callbacks see its eval loss."""
    from transformers import TrainerControl, TrainerState

    from training.callbacks import halving_callbacks

    [callback] = halving_callbacks(folder)
    state, control = TrainerState(global_step=step, max_steps=max_steps), TrainerControl()
    callback.on_evaluate(None, state, control, metrics={"eval_loss": eval_loss})
    return control


def test_a_halving_run_stops_itself_from_its_peers_files(tmp_path):
    """The worker's callback: this run's eval loss at the rung against what the sweep's other
    runs wrote in their metrics.jsonl; runs of another sweep do not count."""
    from kernel.status import read_status
    from training import halving
    from training.callbacks import halving_callbacks

    runs = tmp_path / "runs"
    _member_folder(runs, "a", "sweep-1", {10: 1.0, 20: 0.8, 30: 0.7})
    _member_folder(runs, "b", "sweep-1", {10: 1.2})                   # stopped there earlier
    _member_folder(runs, "other", "sweep-2", {10: 0.1, 20: 0.1})     # another sweep
    _member_folder(runs, "plain", None, {10: 0.1})                    # no sweep at all
    assert halving_callbacks(runs / "plain") == []
    me = _member_folder(runs, "c", "sweep-1", {})

    control = _evaluate(me, 10, 0.9)       # rung 10: best of a, b, c -> keeps training
    assert not control.should_training_stop and halving.stopped(me) is None
    control = _evaluate(me, 20, 0.85)      # rung 20: a 0.8, c 0.85 -> 2nd of 2, keep 1: stop
    assert control.should_training_stop
    stop = halving.stopped(me)
    assert (stop["step"], stop["rank"], stop["n"], stop["loss"]) == (20, 2, 2, 0.85)
    assert stop["note"] == ("stopped by successive halving at step 20: eval loss 0.8500 "
                            "ranked 2 of 2 (keeps the best 1/2)")
    assert read_status(me)[halving.STOP_KEY] == stop
    # The same rule as the pure function on the same losses (one rule, two callers).
    assert halving.halving_stops({"a": {10: 1.0, 20: 0.8, 30: 0.7}, "b": {10: 1.2},
                                  "c": {10: 0.9, 20: 0.85}}, {"c"}, 2, 30) == [
        {k: stop[k] for k in ("run_id", "step", "loss", "rank", "n")}]
    # The last eval step is no rung: a run that got there finishes whatever its loss.
    last = _member_folder(runs, "d", "sweep-1", {10: 0.95, 20: 0.79})
    assert not _evaluate(last, 30, 5.0).should_training_stop


def test_a_halved_runs_stop_is_its_group_note(store, tmp_path):
    """Workers never open the database: the note a halved run wrote in its folder is what
    get_group / run_groups_by_run show, and `halved` marks it for the report."""
    from training import halving

    runs = store.workspace.root / "runs"
    halved = _member_folder(runs, "run-h", "sweep-1", {})
    _member_folder(runs, "run-ok", "sweep-1", {})
    from kernel.status import write_status

    write_status(halved, state="completed", **{halving.STOP_KEY: {
        "step": 4, "note": "stopped by successive halving at step 4: eval loss 2.0000 ranked "
                           "2 of 2 (keeps the best 1/2)"}})
    with store.transaction() as con:
        for rid in ("run-h", "run-ok"):
            con.execute("INSERT INTO runs (id, kind, name, state, config, run_dir) VALUES "
                        "(?, 'train', ?, 'completed', '{}', ?)", [rid, rid, str(runs / rid)])
        record_group(con, "sweep-1", "s1", {}, kind="sweep", spec={"halving": True})
        add_member(con, "sweep-1", "run-h", 0, {"config": 0})
        add_member(con, "sweep-1", "run-ok", 0, {"config": 1})
    members = {m["run_id"]: m for m in get_group(store, "s1")["members"]}
    assert members["run-h"]["halved"] and members["run-h"]["note"].startswith(
        "stopped by successive halving at step 4")
    assert not members["run-ok"]["halved"] and members["run-ok"]["note"] is None
    [g] = run_groups_by_run(store)["run-h"]
    assert g["note"] == members["run-h"]["note"]
    rep = S.report(get_group(store, "s1") | {"spec": {"metric": "exact_match", "suite": "h",
                                                          "seeds": [0], "axes": {}}},
                   {"run-ok": {"exact_match": np.ones(5)}}, 5, ["exact_match"],
                   {"run-ok": "run-ok/step-8"})
    assert [r["runs"] for r in rep["ranking"]] == [["run-ok"]]      # the halved run: no candidate
    [u] = rep["unfinished"]
    assert (u["run_id"], u["state"]) == ("run-h", "stopped by halving")
    assert S.report_table(rep)[-1]["verdict"] == u["note"]
    # The experiments table (UI and `studio experiments`) says so too, not plain "completed".
    rows = {r["run_id"]: r for r in experiments(store)}
    assert rows["run-h"]["halving_note"] == members["run-h"]["note"]
    assert rows["run-ok"]["halving_note"] is None
    states = {r["run_id"]: r["state"] for r in experiments_table(list(rows.values()))}
    assert states == {"run-h": "stopped by halving", "run-ok": "completed"}


# --- picking the winner -----------------------------------------------------------------------

def _binary(p: float, n: int, rng) -> np.ndarray:
    return (rng.random(n) < p).astype(float)


def test_winner_is_significantly_better_when_it_clearly_is():
    rng = np.random.default_rng(0)
    base = _binary(0.4, 300, rng)
    better = np.maximum(base, _binary(0.5, 300, rng))    # passes all base passes and more
    worse = base * _binary(0.5, 300, rng)
    rep = pick_winner([{"label": "r8", "scores": base, "seeds": [0]},
                       {"label": "r16", "scores": better, "seeds": [0]},
                       {"label": "r32", "scores": worse, "seeds": [0]}], binary=True)
    assert rep["winner"] == "r16" and rep["runner_up"] == "r8"
    assert [r["label"] for r in rep["ranking"]] == ["r16", "r8", "r32"]
    assert rep["significant"] and rep["test"] == "McNemar"
    assert "significantly better than the runner-up r8" in rep["verdict"]
    runner = rep["ranking"][1]["vs_winner"]
    assert runner["diff"] == pytest.approx(better.mean() - base.mean())
    assert runner["p_adjusted"] < 0.05 and runner["low"] > 0
    top = rep["ranking"][0]
    assert top["mean"] == pytest.approx(better.mean()) and top["low"] < top["mean"] < top["high"]


def test_winner_is_tied_when_the_runner_up_is_indistinguishable():
    rng = np.random.default_rng(1)
    a = rng.normal(0.5, 0.2, 200)
    b = a + rng.normal(0.0, 0.05, 200) + 0.002          # a hair apart, well within noise
    rep = pick_winner([{"label": "A", "scores": a, "seeds": [0]},
                       {"label": "B", "scores": b, "seeds": [0]}])
    assert not rep["significant"] and rep["verdict"].startswith("tied")
    assert rep["ranking"][1]["tied_with_winner"] and rep["test"] == "paired bootstrap"
    vs = rep["ranking"][1]["vs_winner"]
    assert vs["low"] < 0 < vs["high"]


def test_lower_is_better_and_seeds_use_the_two_level_ci():
    rng = np.random.default_rng(2)
    ex = rng.normal(0, 1, 100)                                       # example difficulty
    low = np.vstack([ex + rng.normal(0, 0.1, 100) for _ in range(3)])  # 3 seeds each
    high = low + 1.0
    rep = pick_winner([{"label": "hi", "scores": high, "seeds": [0, 1, 2]},
                       {"label": "lo", "scores": low, "seeds": [0, 1, 2]}],
                      higher_is_better=False)
    assert rep["winner"] == "lo" and rep["significant"]
    assert rep["test"].startswith("two-level bootstrap")
    assert rep["ranking"][1]["vs_winner"]["diff"] == pytest.approx(-1.0)
    # Seeds that disagree make the same mean difference a tie.
    noisy = low + np.array([[3.0], [-2.5], [0.0]])
    rep = pick_winner([{"label": "lo", "scores": low, "seeds": [0, 1, 2]},
                       {"label": "noisy", "scores": noisy + 0.05, "seeds": [0, 1, 2]}],
                      higher_is_better=False)
    assert not rep["significant"]


# --- run groups -------------------------------------------------------------------------------

def test_groups_record_their_kind_and_members_params(store):
    with store.transaction() as con:
        record_group(con, "sweep-1", "s1", {"lora_r": 16}, kind="sweep", spec={"suite": "h"})
        add_member(con, "sweep-1", "run-a", 0, {"config": 0, "lora_r": 8})
        add_member(con, "sweep-1", "run-b", 0, {"config": 1, "lora_r": 16})
        record_group(con, "group-2", "plain", {}, kind="seeds")
        add_member(con, "group-2", "run-a", 0)
    with pytest.raises(ValueError, match="group kind 'grid'"), store.transaction() as con:
        record_group(con, "x", "x", {}, kind="grid")
    assert [g["kind"] for g in list_groups(store, kind="sweep")] == ["sweep"]
    assert {g["name"] for g in list_groups(store)} == {"s1", "plain"}
    by_run = run_groups_by_run(store)
    assert [(g["group"], g["kind"], g["params"]) for g in by_run["run-a"]] == [
        ("s1", "sweep", {"config": 0, "lora_r": 8}), ("plain", "seeds", {})]
    group = get_group(store, "s1")
    assert group["spec"] == {"suite": "h"} and len(group["members"]) == 2
    assert cancel_group(store, "s1") == []          # no such runs are running: nothing to do
    with pytest.raises(NotFoundError, match="run group 'nope' not found"):
        get_group(store, "nope")


@pytest.fixture
def data(store, tmp_path):
    rows = synthetic.generate(["repeat_twice"], 80, seed=7)
    for i, r in enumerate(rows):
        r["instruction"] += f" (item {i})"
    write_jsonl(tmp_path / "s.jsonl", rows)
    import_file(store, tmp_path / "s.jsonl", "support")
    held = synthetic.generate(["repeat_twice"], 30, seed=99)
    save_suite(store, Suite(name="held", metrics=["exact_match", "length"],
                            rows=[{**r, "id": f"h{i}"} for i, r in enumerate(held)]))
    return "support@v1"


def test_start_refuses_bad_input_before_queuing_anything(store, data, tiny_model):
    cfg = TrainConfig(base_model=str(tiny_model), dataset=data, max_steps=4, report_to=[])
    axes = S.parse_grid(["lora_r=8,16"])
    cases = [(S.SweepSpec(name="s", suite="nope", axes=axes), "nope"),
             (S.SweepSpec(name="s", suite="held", axes=axes, metric="rouge_l"),
              "metric rouge_l: not a metric of suite held"),
             (S.SweepSpec(name="s", suite="held", axes=axes, metric="length"),
              "metric length: has no better direction"),
             (S.SweepSpec(name="s", suite="held", axes={**axes, "dataset": [data, "support@v9"]}),
              "support@v9"),
             (S.SweepSpec(name="s", suite="held", axes=axes, halving=True),
              "successive halving stops runs on eval loss")]
    for spec, message in cases:
        c = cfg if not spec.halving else TrainConfig(**{**cfg.to_dict(), "eval_fraction": 0.0})
        with pytest.raises(StudioError, match=message):
            S.start(store, c, spec)
    assert store.query("SELECT count(*) AS n FROM runs")[0]["n"] == 0
    assert list_groups(store) == []


@pytest.mark.slow
def test_cli_sweep_end_to_end_on_the_tiny_model(store, data, tiny_model, tmp_path, monkeypatch,
                                                capsys):
    monkeypatch.setenv("STUDIO_TORCH_THREADS", "1")
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"base_model": str(tiny_model), "dataset": data,
                                      "max_steps": 8,
                                      "save_steps": 8, "eval_steps": 8, "eval_fraction": 0.0,
                                      "report_to": "none"}))
    ws = str(store.workspace.root)
    capsys.readouterr()
    studio_main(["--workspace", ws, "sweep", "--config", str(config), "--grid",
                 "lr=1e-6,3e-3", "--suite", "held", "--seeds", "5", "--name", "s1", "--json"])
    rep = json.loads(capsys.readouterr().out)

    assert rep["name"] == "s1" and rep["metric"] == "exact_match" and rep["n_examples"] == 30
    assert sorted(r["label"] for r in rep["ranking"]) == ["learning_rate=0.003",
                                                          "learning_rate=1e-06"]
    assert rep["unfinished"] == [] and rep["seeds"] == [5]
    # Every config's reported mean is the mean of its run's stored held-out scores.
    for r in rep["ranking"]:
        [ckpt] = r["checkpoints"]
        stored = store.query("SELECT avg(value) AS m FROM eval_scores WHERE suite = 'held' "
                             "AND checkpoint = ? AND metric = 'exact_match'", [ckpt])[0]["m"]
        assert r["mean"] == pytest.approx(stored) and r["low"] <= r["mean"] <= r["high"]
    runner = rep["ranking"][1]
    assert rep["significant"] == (not runner["tied_with_winner"])
    assert runner["vs_winner"]["diff"] == pytest.approx(rep["ranking"][0]["mean"] - runner["mean"])
    assert rep["verdict"].startswith("tied") != rep["significant"]

    # The runs differ only by the swept field (and their names), and form a 'sweep' group.
    configs = [json.loads(store.query("SELECT config FROM runs WHERE id = ?", [run])[0]["config"])
               for r in rep["ranking"] for run in r["runs"]]
    assert {k for c in configs for k in c if c[k] != configs[0][k]} == {"learning_rate", "name"}
    groups = run_groups_by_run(store)
    for r in rep["ranking"]:
        [g] = groups[r["runs"][0]]
        assert (g["group"], g["kind"], g["params"]["learning_rate"]) == (
            "s1", "sweep", r["params"]["learning_rate"])

    capsys.readouterr()
    studio_main(["--workspace", ws, "sweep", "show", "s1"])        # cached: no new generation
    text = capsys.readouterr().out
    assert "learning_rate=0.003" in text and "95% CI" in text and rep["verdict"] in text
    studio_main(["--workspace", ws, "sweep", "list", "--json"])
    assert [g["name"] for g in json.loads(capsys.readouterr().out)] == ["s1"]


@pytest.mark.slow
def test_detached_halving_sweep_stops_the_weak_run_with_nobody_waiting(
        store, data, tiny_model, tmp_path, monkeypatch, capsys):
    """Real tiny-model jobs, `--detach`, and nothing but the jobs themselves running: the
    weak config (lr 1e-7, hardly moves) stops itself at the first rung with the note, the
    others train to the end (lr 3e-3 leads lr 5e-4 at each rung, so whichever order the
    queued runs take the CPU in, neither is stopped), and the report ranks only those two."""
    from kernel import jobs
    from training import halving

    monkeypatch.setenv("STUDIO_TORCH_THREADS", "1")
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"base_model": str(tiny_model), "dataset": data,
                                      "max_steps": 12, "eval_steps": 4, "save_steps": 4,
                                      "eval_fraction": 0.2, "batch_size": 8,
                                      "logging_steps": 4, "report_to": "none"}))
    ws = str(store.workspace.root)
    capsys.readouterr()
    studio_main(["--workspace", ws, "sweep", "--config", str(config), "--grid",
                 "lr=5e-4,3e-3,1e-7", "--suite", "held", "--name", "asha", "--halving",
                 "--detach", "--json"])
    started = json.loads(capsys.readouterr().out)
    ids = {r["params"]["learning_rate"]: r["run_id"] for r in started["runs"]}
    for run_id in ids.values():      # only watch: kernel.jobs.wait stops nothing
        assert jobs.wait(store, run_id, timeout_s=600, poll_s=1.0)["state"] == "completed"

    weak = jobs.get_run(store, ids[1e-7])
    stop = halving.stopped(weak["run_dir"])
    # Queued runs take the CPU in no fixed order: the weak one met one or two others at rung 4.
    assert stop is not None and stop["step"] == 4 and stop["rank"] == stop["n"] in (2, 3)
    assert stop["note"].startswith("stopped by successive halving at step 4: eval loss ")
    assert [c["id"] for c in weak["checkpoints"]][-1] == f"{ids[1e-7]}/step-4"  # usable
    assert "stopped by successive halving at step 4" in jobs.log_tail(weak["run_dir"], 50)
    losses = {}
    for lr in (5e-4, 3e-3):          # the good ones trained to the end
        run = jobs.get_run(store, ids[lr])
        assert halving.stopped(run["run_dir"]) is None
        assert run["checkpoints"][-1]["step"] == 12
        losses[lr] = halving.eval_losses(run["run_dir"])
    assert losses[3e-3][4] < losses[5e-4][4] < halving.eval_losses(weak["run_dir"])[4]

    events = []                      # the waiting path only reports the runs' own stops
    group = S.wait(store, "asha", on_event=events.append)
    assert [m["run_id"] for m in group["members"] if m["halved"]] == [ids[1e-7]]
    assert f"run {ids[1e-7]} (asha-c2-seed42): completed: {stop['note']}" in events

    capsys.readouterr()
    studio_main(["--workspace", ws, "sweep", "show", "asha", "--json"])
    rep = json.loads(capsys.readouterr().out)
    assert sorted(r["label"] for r in rep["ranking"]) == ["learning_rate=0.0005",
                                                          "learning_rate=0.003"]
    assert rep["winner"] in ("learning_rate=0.0005", "learning_rate=0.003")
    [u] = rep["unfinished"]
    assert (u["run_id"], u["state"], u["note"]) == (ids[1e-7], "stopped by halving",
                                                    stop["note"])
    states = {r["run_id"]: r["state"] for r in experiments_table(experiments(store))}
    assert states == {ids[1e-7]: "stopped by halving", ids[5e-4]: "completed",
                      ids[3e-3]: "completed"}


# --- replay as an axis --------------------------------------------------------------------------

def test_replay_fraction_is_an_axis_that_needs_a_replay_dataset():
    axes = S.parse_grid(["replay_fraction=0,0.25", "lora_r=8,16"])
    assert axes["replay_fraction"] == [0.0, 0.25]
    with pytest.raises(StudioError, match="grid replay_fraction mixes in rows of another "
                                          "dataset: name it with a replay dataset"):
        S.plan(TrainConfig(), S.SweepSpec(name="s", suite="h", axes=axes))
    assert len(S.plan(TrainConfig(), S.SweepSpec(name="s", suite="h", axes=axes,
                                                 replay="general"))) == 4
    with pytest.raises(StudioError, match="grid replay_fraction=1.5: expected a number"):
        S.parse_grid(["replay_fraction=0,1.5"])


def test_replay_mix_adds_a_seeded_share_of_rows_once(store, data, tmp_path):
    from curation.datasets import load_rows
    from curation.replay import replay_mix

    general = synthetic.generate(["reverse"], 40, seed=3)
    write_jsonl(tmp_path / "g.jsonl", general)
    import_file(store, tmp_path / "g.jsonl", "general")
    assert replay_mix(store, "support", "general", 0.0) == "support@v1"
    mixed = replay_mix(store, data, "general", 0.25, seed=1)
    rows = load_rows(store, mixed)
    replayed = [r for r in rows if r["id"].startswith("replay-")]
    assert len(rows) == 80 + 20 and len(replayed) == 20
    general_ids = {r["id"] for r in load_rows(store, "general")}
    assert {r["id"].removeprefix("replay-") for r in replayed} <= general_ids
    assert replay_mix(store, data, "general", 0.25, seed=1) == mixed       # built once
    other = replay_mix(store, data, "general", 0.25, seed=2)
    assert other != mixed and {r["id"] for r in load_rows(store, other)} != {r["id"] for r in rows}
    with pytest.raises(StudioError, match="replay_fraction 2: must be between 0 and 1"):
        replay_mix(store, data, "general", 2)


@pytest.mark.slow
def test_cli_sweep_cancel_stops_the_rest_of_a_detached_sweep(store, data, tiny_model, tmp_path,
                                                             monkeypatch, capsys):
    monkeypatch.setenv("STUDIO_TORCH_THREADS", "1")
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"base_model": str(tiny_model), "dataset": data,
                                      "max_steps": 5000, "save_steps": 5000, "eval_steps": 5000,
                                      "eval_fraction": 0.0, "report_to": "none"}))
    ws = str(store.workspace.root)
    capsys.readouterr()
    studio_main(["--workspace", ws, "sweep", "--config", str(config), "--grid", "lora_r=8,16",
                 "--suite", "held", "--name", "long", "--detach", "--json"])
    started = json.loads(capsys.readouterr().out)
    assert [r["params"] for r in started["runs"]] == [{"lora_r": 8}, {"lora_r": 16}]
    studio_main(["--workspace", ws, "sweep", "cancel", "long", "--json"])
    cancelled = json.loads(capsys.readouterr().out)["cancelled"]
    assert sorted(c["run_id"] for c in cancelled) == sorted(r["run_id"] for r in started["runs"])
    states = {r["id"]: r["state"] for r in store.query("SELECT id, state FROM runs")}
    assert set(states.values()) == {"cancelled"}
    with pytest.raises(SystemExit) as exc:                 # nothing left to evaluate: one line
        studio_main(["--workspace", ws, "sweep", "show", "long"])
    assert exc.value.code == 1
    assert "sweep long: no run completed with a checkpoint (cancelled)" in capsys.readouterr().err
