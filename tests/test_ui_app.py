"""AppTests for the Streamlit studio: real pages, real DuckDB workspaces, no browser."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from kernel.store import Store
from tests.helpers.apptest import page

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "studio" / "app.py"
PAGES = REPO / "studio" / "views"


def texts(at: AppTest, kind: str) -> list[str]:
    return [str(e.value) for e in getattr(at, kind)]


def add_run(store: Store, run_id: str, state: str, metrics: list[dict], kind: str = "train",
            pid: int | None = None) -> Path:
    """A run as kernel.jobs leaves it: a row in `runs` and a folder with metrics and a log."""
    folder = store.workspace.run_dir(run_id)
    (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
    (folder / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics)
                                          + '{"step": 9, "lo')  # a half-written last line
    (folder / "log.txt").write_text("loading model\nstep 1 loss 2.0\n")
    (folder / "status.json").write_text(json.dumps({"state": state, "pid": pid}))
    with store.transaction() as con:
        con.execute("INSERT INTO runs (id, kind, name, state, pid, pgid, run_dir, config) "
                    "VALUES (?,?,?,?,?,?,?,?)",
                    [run_id, kind, run_id, state, pid, pid, str(folder), json.dumps({})])
    return folder


def test_app_renders_navigation_and_status_bar(ui_env):
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    assert not at.exception
    labels = [m.label for m in at.sidebar.metric]
    assert labels == ["Running jobs", "GPU"]
    assert at.sidebar.metric[1].value in ("yes", "no")
    assert at.title[0].value == "Datasets"
    assert at.sidebar.text_input[0].value == str(ui_env.workspace.root)


def test_query_param_opens_compare_page(ui_env):
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.query_params["page"] = "compare"
    at.run()
    assert not at.exception
    assert at.title[0].value == "Compare"


def test_workspace_picker_switches_workspace(ui_env, tmp_path):
    # The status bar alone: AppTest loses the sidebar of an app that has a pages/ folder next
    # to it on reruns (first runs are fine), so the picker's click is tested on its own.
    import subprocess

    live = subprocess.Popen(["sleep", "60"])  # a job whose process is alive
    try:
        add_run(ui_env, "r-live", "running", [], pid=live.pid)
        check_picker(tmp_path)
    finally:
        live.kill()
        live.wait()


def check_picker(tmp_path: Path) -> None:
    at = AppTest.from_string("from studio.ui.status import sidebar\nsidebar()",
                             default_timeout=30).run()
    assert at.sidebar.metric[0].value == "1"
    other = tmp_path / "other-ws"
    at.sidebar.text_input[0].input(str(other))
    at.sidebar.button[0].click().run()  # a folder that does not exist: refused, not created
    assert not at.exception
    assert "does not exist" in at.sidebar.error[0].value and not other.exists()
    assert at.sidebar.metric[0].value == "1"  # still the old workspace
    at.sidebar.checkbox(key="workspace_create").check()
    at.sidebar.button[0].click().run()
    assert not at.exception
    assert (other / "studio.duckdb").exists()
    assert at.sidebar.metric[0].value == "0"


def test_datasets_page_empty_workspace_guides_user(ui_env):
    at = page("datasets").run()
    assert not at.exception
    assert [m.value for m in at.metric][:1] == ["0"]
    assert any("No datasets" in t for t in texts(at, "info"))


def test_train_page_lists_runs_and_charts_metrics(ui_env):
    add_run(ui_env, "run-a", "completed", [{"step": s, "loss": 2.0 / s, "lr": 1e-3,
                                            "tokens_per_s": 5000.0} for s in range(1, 6)])
    add_run(ui_env, "run-b", "failed", [{"step": 1, "loss": 3.0, "eval_loss": 3.1}])
    at = page("train").run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Runs"] == "2" and metrics["Completed"] == "1"
    assert metrics["Failed / cancelled"] == "1"
    # both runs overlaid: pick them in the chart selector
    at.multiselect(key="train_chosen").set_value(["run-a", "run-b"]).run()
    assert not at.exception
    charts = at.get("vega_lite_chart")
    assert len(charts) == 4  # train loss, eval loss, learning rate, tokens/s
    assert any("loss 2.0" in c.value for c in at.code)
    # a failed run offers Resume, a completed one does not offer Cancel
    labels = [b.label for b in at.button]
    assert "Resume" in labels and "Cancel" not in labels


def test_curate_page_without_datasets_points_to_import(ui_env):
    at = page("curate").run()
    assert not at.exception
    assert any("import one" in t for t in texts(at, "info"))


def test_evaluate_and_compare_pages_render_on_empty_workspace(ui_env):
    for name in ("evaluate", "compare"):
        at = page(name).run()
        assert not at.exception, name
        assert at.title[0].value == name.title()


def test_no_page_holds_the_database_open(ui_env):
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    assert not at.exception
    # another process must be able to take the write lock right after a render
    import subprocess
    import sys
    code = ("import duckdb,sys; c=duckdb.connect(sys.argv[1]); "
            "c.execute('CREATE TABLE IF NOT EXISTS probe(x INT)'); c.close()")
    done = subprocess.run([sys.executable, "-c", code, str(ui_env.path)], capture_output=True,
                          text=True, timeout=30, env=dict(os.environ))
    assert done.returncode == 0, done.stderr


def write_jsonl(path: Path, rows: list[dict], bad_line: int | None = None) -> Path:
    lines = [json.dumps(r) for r in rows]
    if bad_line is not None:
        lines[bad_line - 1] = '{"instruction": "broken'
    path.write_text("\n".join(lines) + "\n")
    return path


ALPACA = [{"instruction": f"Say word {i}", "input": "", "output": f"word {i} " * (i % 4 + 1)}
          for i in range(30)]


def import_via_page(path: Path, name: str) -> AppTest:
    at = page("datasets").run()
    at.radio[0].set_value("Path or Hugging Face name").run()
    path_box = next(t for t in at.text_input if t.label == "Path or dataset name")
    path_box.input(str(path)).run()
    return at


def test_import_by_path_shows_preview_then_commits(ui_env, tmp_path):
    from curation.datasets import list_datasets

    at = import_via_page(write_jsonl(tmp_path / "alpaca.jsonl", ALPACA), "alpaca")
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Detected format"] == "alpaca"
    assert list_datasets(ui_env) == []  # previewing writes nothing
    name_box = next(t for t in at.text_input if t.label == "Dataset name")
    assert name_box.value == "alpaca"
    next(b for b in at.button if b.label == "Import").click().run()
    assert not at.exception
    assert any("Imported 30 rows" in s for s in texts(at, "success"))
    assert [d["name"] for d in list_datasets(ui_env)] == ["alpaca"]
    assert {m.label: m.value for m in at.metric}["Datasets"] == "1"


def test_import_tab_offers_every_format_and_imports_with_the_chosen_one(ui_env, tmp_path):
    from curation.datasets import list_datasets
    from curation.formats import FORMATS

    qa = write_jsonl(tmp_path / "qa.jsonl", [{"question": f"q{i}", "answer": f"a{i}",
                                              "instruction": "ignored", "output": "ignored"}
                                             for i in range(5)])
    at = import_via_page(qa, "qa")
    box = at.selectbox(key="import_format")
    assert box.options == ["auto", *FORMATS]
    assert {"alpaca", "prompt_completion", "qa", "chat", "sharegpt"} <= set(box.options)
    assert {m.label: m.value for m in at.metric}["Detected format"] == "alpaca"
    box.set_value("qa").run()  # the box's choice reaches the importer
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Detected format"] == "qa"
    next(b for b in at.button if b.label == "Import").click().run()
    assert any("format qa" in s for s in texts(at, "success"))
    assert [d["format"] for d in list_datasets(ui_env)] == ["qa"]


def test_bad_file_shows_error_and_leaves_store_unchanged(ui_env, tmp_path):
    from curation.datasets import list_datasets

    bad = write_jsonl(tmp_path / "bad.jsonl", ALPACA, bad_line=7)
    at = import_via_page(bad, "bad")
    assert not at.exception  # a readable box, never a traceback
    errors = texts(at, "error")
    assert errors and "bad.jsonl" in errors[0] and "7" in errors[0]
    assert list_datasets(ui_env) == []


def test_browser_filters_and_pages_in_duckdb(ui_env, tmp_path):
    from curation.importer import import_file

    import_file(ui_env, write_jsonl(tmp_path / "a.jsonl", ALPACA), "alpaca")
    at = page("datasets").run()
    assert not at.exception
    assert any("30 rows match" in c for c in texts(at, "caption"))
    at.text_input(key="browse_where").input("resp_chars>=20").run()
    assert not at.exception
    expected = sum(len(r["output"]) >= 20 for r in ALPACA)
    assert any(f"{expected} rows match" in c for c in texts(at, "caption"))
    at.text_input(key="browse_where").input("").run()
    at.text_input(key="browse_search").input("word 7").run()
    assert any("1 rows match" in c for c in texts(at, "caption"))
    at.text_input(key="browse_search").input("").run()
    at.selectbox(key="browse_size").set_value(25).run()
    at.number_input(key="browse_page").set_value(2).run()
    assert any("showing 5" in c for c in texts(at, "caption"))
    at.text_input(key="browse_where").input("resp_chars ?? 3").run()
    assert any("Filter failed" in e for e in texts(at, "error"))


def test_curate_dedup_runs_in_background_and_keeper_override_saves_version(ui_env, tmp_path):
    from curation.datasets import list_versions
    from curation.importer import import_file
    from studio.ui import background

    rows = ALPACA[:10] + [dict(ALPACA[3]), dict(ALPACA[3]), dict(ALPACA[5])]  # 2 clusters
    import_file(ui_env, write_jsonl(tmp_path / "d.jsonl", rows), "dups")
    at = page("curate").run()
    assert not at.exception
    next(b for b in at.button if b.label == "Run dedup").click().run()
    scope = str(ui_env.workspace.root)
    task = background.wait(background.tasks("Dedup", scope)[0])
    assert task.state == "completed", task.error
    assert task.result["n_flagged"] == 3
    at.run()  # what the polling fragment does when the task ends
    assert not at.exception
    assert at.selectbox(key="curate_version").value == "v2"  # switched to the new version
    assert "3 rows" in at.expander[0].label and "2 rows" in at.expander[1].label  # largest first
    assert any("similarity 1.00 to the row dedup kept" in m for m in texts(at, "markdown"))
    keep = [b for b in at.button if b.label == "Keep this one"]
    assert keep
    keep[0].click().run()
    save = next(b for b in at.button if b.label.startswith("Save new version with 1"))
    save.click().run()
    assert not at.exception
    assert any("Saved ` dups@v3 `" in s for s in texts(at, "success"))  # as a literal
    assert [v["operation"] for v in list_versions(ui_env, "dups")] == ["import", "dedup", "edit"]


@pytest.mark.slow
def test_train_page_launches_a_tiny_run_and_charts_it(ui_env, tmp_path, tiny_model):
    from curation.importer import import_file
    from kernel import jobs
    from training import synthetic

    rows = synthetic.generate(["repeat_twice"], 24, seed=1)
    path = tmp_path / "tune.jsonl"
    path.write_text("".join(json.dumps({"instruction": r["instruction"], "output": r["response"]})
                            + "\n" for r in rows))
    import_file(ui_env, path, "tune")
    model_dir = ui_env.workspace.models_dir / "tiny"
    model_dir.symlink_to(tiny_model, target_is_directory=True)

    at = page("train").run()
    assert not at.exception
    assert at.selectbox(key="train.base_model").value == str(model_dir)
    assert at.selectbox(key="train.dataset").value == "tune"
    for key, value in (("max_steps", 3), ("batch_size", 8), ("logging_steps", 1),
                       ("eval_steps", 3), ("save_steps", 3)):
        at.number_input(key=f"train.{key}").set_value(value)
    next(b for b in at.button if b.label == "Launch run").click().run(timeout=120)
    assert not at.exception, at.exception
    assert not texts(at, "error"), texts(at, "error")
    run_id = at.session_state["train_focus"]
    assert any(run_id in s for s in texts(at, "success"))
    run = jobs.wait(ui_env, run_id, timeout_s=300)
    assert run["state"] == "completed", run.get("error")
    at.run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Completed"] == "1"
    assert len(at.get("vega_lite_chart")) >= 2  # loss and lr curves from metrics.jsonl


def test_train_form_rejects_bad_values_with_a_readable_error(ui_env, tmp_path):
    at = page("train").run()
    at.number_input(key="train.learning_rate").set_value(-1.0)
    next(b for b in at.button if b.label == "Launch run").click().run()
    assert not at.exception
    errors = texts(at, "error")
    assert errors and "learning_rate" in errors[0]
    from kernel.jobs import list_runs
    assert list_runs(ui_env) == []


@pytest.fixture
def evaluated(ui_env, tmp_path, tiny_model):
    """A task suite and a general suite, with cached outputs of the base model and an adapter."""
    from evals.evaluate import evaluate
    from evals.suites import Suite, save_suite
    from tests.helpers.fixtures import make_lora_adapter
    from training import synthetic

    adapter = make_lora_adapter(tiny_model, tmp_path / "adapter", seed=3, scale=0.8)
    task = synthetic.generate(["reverse", "capitals"], 6, seed=5)
    general = synthetic.generate(["count_letters"], 6, seed=6)
    for name, role, rows in (("task", "task", task), ("general", "general", general)):
        rows = [{**r, "id": f"{name}-{i}"} for i, r in enumerate(rows)]
        save_suite(ui_env, Suite(name=name, role=role, metrics=["exact_match", "token_f1"],
                                 sampling={"max_new_tokens": 8}, rows=rows))
        evaluate(ui_env, name, [f"base:{tiny_model}", str(adapter)], backend="hf")
    return f"base:{tiny_model}", str(adapter)


@pytest.mark.slow
def test_compare_page_shows_stats_examples_and_forgetting(ui_env, evaluated):
    base, adapter = evaluated
    at = page("compare").run(timeout=120)
    assert not at.exception, at.exception
    assert at.selectbox(key="cmp_suite").options == ["task", "general"]  # task suites first
    at.selectbox(key="cmp_suite").set_value("task").run(timeout=120)
    assert at.selectbox(key="cmp_baseline").value == base
    assert at.multiselect(key="cmp_candidates").value == [adapter]
    tables = at.dataframe
    wide, paired = tables[0].value, tables[1].value
    assert list(wide["checkpoint"]) == ["base: " + Path(base).name, adapter]  # checkpoint_label
    assert set(paired["metric"]) == {"exact_match", "token_f1"}
    assert paired["ci_low"].le(paired["diff"]).all() and paired["diff"].le(paired["ci_high"]).all()
    assert len(at.get("vega_lite_chart")) >= 2
    # examples: each changed example shows both outputs side by side with the diff
    shown = 0
    at.session_state["cmp_tab"] = "Examples"  # tabs render lazily: open the Examples tab
    at.run(timeout=120)
    for kind in ("regressions", "improvements"):
        at.radio(key="cmp_kind").set_value(kind).run(timeout=120)
        diffs = [e for e in at.get("html") if "tsdiff" in str(e.proto)]
        shown += len(diffs)
        assert all("baseline" in str(e.proto) and "candidate" in str(e.proto) for e in diffs)
    assert shown >= 1  # the perturbed adapter changes some outputs
    assert not at.exception


def test_compare_page_without_results_explains_what_to_do(ui_env):
    at = page("compare").run()
    assert not at.exception
    assert any("Evaluate at least two checkpoints" in t for t in texts(at, "info"))


def test_scores_filter_sliders_count_live_and_save_version(ui_env, tmp_path):
    from curation.datasets import list_versions
    from curation.importer import import_file
    from curation.scoring import score

    import_file(ui_env, write_jsonl(tmp_path / "a.jsonl", ALPACA), "alpaca")
    scored = score(ui_env, "alpaca")  # heuristic scores, a new version
    at = page("curate")
    at.session_state["curate_tab"] = ":material/tune: Scores & filters"  # tabs run lazily
    at.run()
    assert at.selectbox(key="curate_version").value == scored["ref"].split("@")[1]
    kept = {m.label: m.value for m in at.metric}["Rows kept"]
    assert kept == "30 of 30"
    slider = at.slider(key="thr-resp_chars")
    lo, hi = slider.value
    at.slider(key="thr-resp_chars").set_value((lo, 20.0)).run()
    assert not at.exception
    expected = sum(len(r["output"]) <= 20 for r in ALPACA)
    assert {m.label: m.value for m in at.metric}["Rows kept"] == f"{expected} of 30"
    next(b for b in at.button if b.label == "Save as new version").click().run()
    assert any(f"with {expected} rows" in s for s in texts(at, "success"))
    assert list_versions(ui_env, "alpaca")[-1]["operation"] == "filter"


def test_statistics_tab_draws_length_and_score_histograms(ui_env, tmp_path):
    from curation.importer import import_file
    from curation.scoring import score

    import_file(ui_env, write_jsonl(tmp_path / "a.jsonl", ALPACA), "alpaca")
    score(ui_env, "alpaca")
    at = page("datasets").run()
    assert not at.exception
    assert len(at.get("vega_lite_chart")) == 1  # response chars by default
    at.selectbox(key="stats_measure").set_value("score:resp_chars").run()
    assert not at.exception
    assert len(at.get("vega_lite_chart")) == 1


def test_cancel_button_kills_the_job_process_group(ui_env):
    import subprocess

    # A job as kernel.jobs starts it: its own process group, state in status.json
    live = subprocess.Popen(["sleep", "120"], start_new_session=True)
    try:
        add_run(ui_env, "run-live", "running", [{"step": 1, "loss": 2.0}], pid=live.pid)
        at = page("train").run()
        assert {m.label: m.value for m in at.metric}["Running"] == "1"
        next(b for b in at.button if b.label == "Cancel").click().run(timeout=60)
        assert not at.exception
        assert live.wait(timeout=20) is not None  # the process group is gone
        assert {m.label: m.value for m in at.metric}["Failed / cancelled"] == "1"
        assert "Resume" in [b.label for b in at.button]
    finally:
        if live.poll() is None:
            live.kill()


def test_checkpoint_labels_use_run_names():
    from studio.ui.compare_data import labeller

    label = labeller({"train-1": "curated"})
    assert label("train-1/step-300") == "curated · train-1 / step-300"
    assert label("train-2/step-300") == "train-2 / step-300"  # unnamed run keeps its id
    assert label("base:/models/tiny-abc") == "base: tiny-abc"
