"""Job panels without a browser (AppTest and the helpers they use): run names, progress text and
ETA, per-checkpoint eval progress, the base-model default (issue 11 defect 8), the selection of
a new or linked job and job states that follow the run files (defect 1).
The browser journey (fragments refreshing on their own) is tests/test_ui_browser_jobs.py."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from kernel.store import Store
from studio.ui import runs
from tests.helpers.apptest import page as open_page

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "studio" / "app.py"
PAGES = REPO / "studio" / "views"
ROWS = [{"id": f"r{i}", "messages": [{"role": "user", "content": f"reverse {w}"},
                                     {"role": "assistant", "content": w[::-1]}]}
        for i, w in enumerate(["apple", "river", "stone", "cloud", "tiger", "lemon", "grape",
                               "melon", "peach", "olive", "mango", "berry"])]


def page(name: str):
    return open_page(name, timeout_s=60)  # its pages wait on jobs


def add_run(store: Store, run_id: str, status: dict, name: str | None = None,
            kind: str = "train", pid: int | None = None) -> Path:
    """A run as kernel.jobs leaves it: a row in `runs` and a folder with its status file."""
    folder = store.workspace.run_dir(run_id)
    (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
    (folder / "status.json").write_text(json.dumps({"pid": pid, **status}))
    (folder / "log.txt").write_text("[job] starting\n")
    with store.transaction() as con:
        con.execute("INSERT INTO runs (id, kind, name, state, pid, pgid, run_dir, config) "
                    "VALUES (?,?,?,?,?,?,?,?)",
                    [run_id, kind, name, status["state"], pid, pid, str(folder), "{}"])
    return folder


def test_run_label_is_name_and_short_id_everywhere():
    rid = "train-20261203-231032-ab12"
    assert runs.short_id(rid) == "ab12"
    assert runs.run_label({"id": rid, "name": "curated"}) == "curated · ab12"
    assert runs.run_label({"id": rid, "name": None}) == rid  # unnamed: the id
    assert runs.run_label({"id": "my-run", "name": "my-run"}) == "my-run"
    named = {rid: {"id": rid, "name": "curated"}}
    assert runs.checkpoint_label(f"{rid}/step-40", named) == "curated · ab12 / step-40"
    assert runs.checkpoint_label("base:/ws/models/tiny-3f2a") == "base: tiny-3f2a"
    assert runs.checkpoint_label("base:Qwen/Qwen2.5-0.5B") == "base: Qwen/Qwen2.5-0.5B"


def test_progress_text_counts_steps_and_ages_the_eta(tmp_path):
    run = {"id": "r", "state": "running", "run_dir": str(tmp_path)}
    now = time.time()
    text = runs.progress_text(run, {"step": 12, "max_steps": 40, "eta_s": 100.0,
                                    "updated_at": now - 30})
    assert text.startswith("step 12 of 40 · ETA 1m 1") and text.endswith("s")  # ~70 s left
    assert runs.eta_left({"eta_s": 10.0, "updated_at": now - 60}, now) == 0.0  # never < 0
    evals = runs.progress_text(run, {"done": 64, "total": 128, "eta_s": 30.0, "updated_at": now})
    assert evals.startswith("64 of 128 generations · ETA ")
    done = runs.progress_text({**run, "state": "completed"},
                              {"step": 40, "max_steps": 40, "started_at": 100.0,
                               "finished_at": 225.0})
    assert done == "step 40 of 40 · finished in 2m 05s"
    queued = runs.progress_text({**run, "state": "queued"}, {"waiting_for": ["locks/cpu.lock"]})
    assert "waiting for the running job" in queued
    assert runs.format_duration(3 * 3600 + 120) == "3h 02m"


def test_completed_run_reads_100_percent_whatever_it_last_wrote(tmp_path):
    (tmp_path / "status.json").write_text(json.dumps({"state": "completed", "progress": 0.0}))
    assert runs.progress({"id": "r", "state": "completed", "run_dir": str(tmp_path)}) == 1.0
    (tmp_path / "status.json").write_text(json.dumps({"state": "running", "progress": 0.25}))
    assert runs.progress({"id": "r", "state": "running", "run_dir": str(tmp_path)}) == 0.25


def test_checkpoint_progress_skips_malformed_entries():
    status = {"checkpoints": [{"name": "base:m", "done": 4, "total": 8}, "junk",
                              {"name": "r/step-2", "done": "x", "total": 8},
                              {"name": "r/step-4", "done": 0, "total": 0}]}
    rows = runs.checkpoint_progress(status)
    assert [(r["checkpoint"], r["fraction"]) for r in rows] == [("base:m", 0.5),
                                                                ("r/step-4", 1.0)]


def test_eval_worker_reports_per_checkpoint_progress_while_generating(store, tiny_model,
                                                                      tmp_path, capsys):
    from evals.eval_worker import chunks, prepare, run
    from evals.suites import Suite, save_suite
    from evals.types import SamplingConfig
    from kernel.status import read_status
    from tests.helpers.fixtures import make_lora_adapter

    adapter = make_lora_adapter(tiny_model, tmp_path / "ad", seed=5, scale=0.3)
    save_suite(store, Suite(name="w", rows=ROWS, metrics=["exact_match"],
                            sampling=SamplingConfig(max_new_tokens=4)))
    base = f"base:{tiny_model}"
    run_dir = tmp_path / "run"
    req = prepare(store, run_dir, "w", [base, str(adapter)], backend="hf",
                  backend_options={"batch_size": 4})
    from evals.generate import Item
    pieces = chunks([Item(**i) for i in req["items"]])
    assert [len(p) for _, p in pieces] == [8, 4, 8, 4]  # 12 prompts: slices of >= 8 each
    assert run(run_dir) == 24
    status = read_status(run_dir)
    assert status["state"] == "completed" and status["done"] == status["total"] == 24
    assert status["checkpoints"] == [{"name": base, "done": 12, "total": 12},
                                     {"name": str(adapter), "done": 12, "total": 12}]
    assert isinstance(status["eta_s"], float)
    log = capsys.readouterr().out
    assert f"[eval] {base}: 8 of 12 generations (8 of 24 in all)" in log  # mid-checkpoint


def test_base_model_default_is_a_base_model_shown_by_name(ui_env, tiny_model, tmp_path):
    """Defect 8: a merged fine-tune (the demo writes one into models/) sorts before the tiny
    base model by name; it must not be the default, and pickers show names, not paths."""
    from tests.helpers.fixtures import make_lora_adapter
    from training.listing import base_model_choices
    from training.merge import merge_checkpoint

    models = ui_env.workspace.models_dir
    (models / "tiny").symlink_to(tiny_model, target_is_directory=True)
    adapter = make_lora_adapter(tiny_model, tmp_path / "ad", seed=2, scale=0.3)
    merge_checkpoint(None, str(adapter), models / "merged-run-step-3")
    choices = base_model_choices(ui_env)
    assert choices == [str(models / "tiny"), str(models / "merged-run-step-3")]

    at = page("train").run()
    assert not at.exception
    box = at.selectbox(key="train.base_model")
    assert box.value == str(models / "tiny")
    assert box.options == ["tiny", "merged-run-step-3 (merged fine-tune)"]


def test_launched_or_linked_run_becomes_the_selected_one(ui_env):
    for i, rid in enumerate(["train-20261201-100000-aaaa", "train-20261201-110000-bbbb"]):
        add_run(ui_env, rid, {"state": "completed", "progress": 1.0}, name=f"run{i}")
        time.sleep(0.01)
    at = page("train").run()
    assert at.multiselect(key="train_chosen").value == ["train-20261201-110000-bbbb"]  # newest
    assert at.multiselect(key="train_chosen").format_func(
        "train-20261201-100000-aaaa") == "run0 · aaaa"
    at.session_state["train_launched"] = "train-20261201-100000-aaaa"  # what Launch leaves
    at.run()
    assert at.multiselect(key="train_chosen").value == ["train-20261201-100000-aaaa"]
    assert at.session_state["train_tab.open"].endswith("Runs")
    assert at.query_params["run"] == "train-20261201-100000-aaaa"

    linked = page("train")
    linked.query_params["run"] = "train-20261201-100000-aaaa"
    linked.run()
    assert linked.multiselect(key="train_chosen").value == ["train-20261201-100000-aaaa"]
    bad = page("train")
    bad.query_params["run"] = "nope"
    bad.run()
    assert any("not in this workspace" in w.value for w in bad.warning)


def test_job_state_follows_the_run_files_and_the_sidebar_count_drops(ui_env):
    """Defect 1's reading side: a job that wrote `completed` reads completed and 100% on the
    next read, and the sidebar's count drops (the fragments re-read every 2 s)."""
    live = subprocess.Popen(["sleep", "120"], start_new_session=True)
    try:
        folder = add_run(ui_env, "train-20261201-120000-cccc",
                         {"state": "running", "progress": 0.0, "step": 0, "max_steps": 3},
                         name="live", pid=live.pid)
        at = AppTest.from_file(str(APP), default_timeout=60).run()
        assert not at.exception
        assert at.sidebar.metric[0].value == "1"
        at.switch_page(str(PAGES / "train.py")).run()
        assert {m.label: m.value for m in at.metric}["Running"] == "1"
        assert any(p.text.startswith("step 0 of 3") for p in at.get("progress"))
        # the job finishes as kernel.job_runner ends it: final status, process gone
        (folder / "status.json").write_text(json.dumps(
            {"state": "completed", "progress": 1.0, "step": 3, "max_steps": 3,
             "started_at": time.time() - 5, "finished_at": time.time(), "pid": live.pid}))
        live.kill()
        live.wait()
        at.run()
        assert not at.exception
        assert at.sidebar.metric[0].value == "0"
        assert {m.label: m.value for m in at.metric}["Completed"] == "1"
        bars = at.get("progress")
        assert bars and bars[0].value == 100 and bars[0].text.startswith("step 3 of 3 · finished")
    finally:
        if live.poll() is None:
            live.kill()


def test_evaluate_link_preselects_a_checkpoint_with_its_base_model(ui_env, tiny_model):
    from evals.suites import Suite, save_suite
    from kernel.jobs import refresh
    from tests.helpers.fixtures import make_lora_adapter

    save_suite(ui_env, Suite(name="w", rows=ROWS[:3], metrics=["exact_match"]))
    rid = "train-20261201-130000-dddd"
    folder = add_run(ui_env, rid, {"state": "running"}, name="tuned")
    step = folder / "checkpoints" / "step-2"
    make_lora_adapter(tiny_model, step, seed=1, scale=0.3)
    (step / "meta.json").write_text(json.dumps({"step": 2, "base_model": str(tiny_model)}))
    (folder / "status.json").write_text(json.dumps({"state": "completed"}))
    refresh(ui_env)
    at = page("evaluate")
    at.query_params["checkpoint"] = f"{rid}/step-2"
    at.run()
    assert not at.exception
    box = at.multiselect(key="eval_ckpts")
    assert box.value == [f"base:{tiny_model}", f"{rid}/step-2"]
    assert box.format_func(f"{rid}/step-2") == "tuned · dddd / step-2"


def test_evaluate_jobs_show_per_checkpoint_progress_cancel_and_log(ui_env):
    live = subprocess.Popen(["sleep", "120"], start_new_session=True)
    try:
        add_run(ui_env, "eval-20261201-140000-eeee",
                {"state": "running", "done": 6, "total": 16, "progress": 0.375, "eta_s": 20.0,
                 "updated_at": time.time(),
                 "checkpoints": [{"name": "base:m", "done": 6, "total": 8},
                                 {"name": "r/step-2", "done": 0, "total": 8}]},
                name="eval w (2 models)", kind="eval", pid=live.pid)
        at = page("evaluate").run()
        assert not at.exception
        bars = at.get("progress")
        assert bars[0].text.startswith("6 of 16 generations · ETA ")
        assert [b.text for b in bars[1:]] == ["base: m: 6 of 8 generations",
                                              "r / step-2: 0 of 8 generations"]
        assert [b.value for b in bars[1:]] == [75, 0]
        assert "[job] starting" in at.code[0].value  # the log
        next(b for b in at.button if b.label == "Cancel").click().run(timeout=60)
        assert not at.exception
        assert live.wait(timeout=20) is not None
        assert any("— cancelled" in m.value for m in at.markdown)
    finally:
        if live.poll() is None:
            live.kill()
