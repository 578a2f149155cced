"""Queuing a sweep and an ablation from the Experiments page (Streamlit AppTest, real DuckDB
workspace, real tiny model and training workers) and reading the report the CLI prints.

A bad grid shows one error line and queues nothing; a valid form queues one run group that
evals.experiments lists, exactly as `studio sweep --detach` / `studio ablate --detach` do.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from curation.importer import import_file
from curation.split import split
from evals.experiments import experiments
from evals.suites import Suite, save_suite
from kernel import jobs
from kernel.store import Store
from training import synthetic
from training.data import write_jsonl
from training.groups import cancel_group, get_group, list_groups

PAGE = Path(__file__).resolve().parents[1] / "studio" / "views" / "experiments.py"


@pytest.fixture
def ui_env(store: Store, tiny_model, tmp_path, monkeypatch):
    """A workspace with the tiny model in models/, support@v1 (imported) -> v2 (split) and a
    held-out suite `held`."""
    monkeypatch.setenv("STUDIO_WORKSPACE", str(store.workspace.root))
    monkeypatch.setenv("STUDIO_TORCH_THREADS", "1")
    models = store.workspace.root / "models"
    models.mkdir(exist_ok=True)
    (models / "tiny").symlink_to(tiny_model, target_is_directory=True)
    rows = synthetic.generate(["repeat_twice"], 40, seed=7)
    for i, r in enumerate(rows):
        r["instruction"] += f" (item {i})"
    write_jsonl(tmp_path / "s.jsonl", rows)
    import_file(store, tmp_path / "s.jsonl", "support")
    split(store, "support", held_out=0.25, seed=0)
    held = synthetic.generate(["repeat_twice"], 8, seed=99)
    save_suite(store, Suite(name="held", metrics=["exact_match"],
                            rows=[{**r, "id": f"h{i}"} for i, r in enumerate(held)]))
    return store


def page() -> AppTest:
    return AppTest.from_file(str(PAGE), default_timeout=60)


def _click(at: AppTest, label: str) -> AppTest:
    return next(b for b in at.button if b.label == label).click().run()


def _fill_sweep(at: AppTest, grid: str) -> None:
    at.selectbox(key="sweep_suite").select("held")
    at.number_input(key="sweep_steps").set_value(2)
    at.multiselect(key="sweep_datasets").set_value(["support@v1"])
    at.text_area(key="sweep_grid").input(grid)
    at.text_input(key="sweep_name").input("ui-sweep")


def test_bad_grid_shows_one_error_and_queues_nothing(ui_env):
    at = page().run()
    assert not at.exception
    assert "No training runs yet" in at.info[0].value
    _fill_sweep(at, "lora_r=8,16\nlora_rr=4")
    _click(at, "Queue sweep")
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "lora_rr: not a TrainConfig field" in errors[0], errors
    assert "\n" not in errors[0]
    assert ui_env.query("SELECT id FROM runs") == []
    assert list_groups(ui_env) == []


def test_valid_sweep_is_queued_as_one_group(ui_env):
    at = page().run()
    _fill_sweep(at, "lora_r=8,16")
    _click(at, "Queue sweep")
    try:
        assert not at.exception
        assert not at.error, [e.value for e in at.error]
        assert "ui-sweep" in at.success[0].value and "2 runs" in at.success[0].value
        rows = experiments(ui_env)
        assert len(rows) == 2
        assert {r["group"] for r in rows} == {"ui-sweep"}
        assert {r["group_kind"] for r in rows} == {"sweep"}
        assert sorted(r["config"]["lora_r"] for r in rows) == [8, 16]
        assert {r["config"]["max_steps"] for r in rows} == {2}
        at = page().run()   # the page now lists the group, and its report waits for the runs
        assert not at.exception
        assert at.selectbox(key="exp_report_group").value["name"] == "ui-sweep"
    finally:
        cancel_group(ui_env, "ui-sweep")


def test_ablation_form_queues_one_run_per_version(ui_env):
    at = page().run()
    at.selectbox(key="abl_ref").select("support@v2").run()
    assert at.multiselect(key="abl_versions").value == ["v1", "v2"]
    at.selectbox(key="abl_suite").select("held")
    at.number_input(key="abl_steps").set_value(2)
    _click(at, "Queue ablation")
    groups = list_groups(ui_env, kind="ablation")
    try:
        assert not at.exception and not at.error, [e.value for e in at.error]
        assert len(groups) == 1 and len(groups[0]["runs"]) == 2
        assert {r["dataset"] for r in experiments(ui_env)} == {"support@v1", "support@v2"}
    finally:
        for g in groups:
            cancel_group(ui_env, g["id"])


def test_ablation_of_a_single_version_is_refused_before_queuing(ui_env):
    at = page().run()
    at.selectbox(key="abl_ref").select("support@v1").run()
    assert not at.exception
    assert any("needs at least two versions" in e.value for e in at.error)
    assert next(b for b in at.button if b.label == "Queue ablation").disabled
    assert ui_env.query("SELECT id FROM runs") == []


def _report_section() -> None:
    from studio.ui.experiment_forms import group_report

    group_report()


@pytest.mark.slow
def test_finished_sweep_reports_its_winner_in_the_page(ui_env):
    at = page().run()
    _fill_sweep(at, "lora_r=8,16")
    _click(at, "Queue sweep")
    assert not at.error and at.success, [e.value for e in at.error]
    try:
        for run in ui_env.query("SELECT id FROM runs"):
            assert jobs.wait(ui_env, run["id"], timeout_s=240)["state"] == "completed"
        # The report section alone: outside the app's navigation, the page's links to other
        # pages (shown for completed runs) cannot resolve in AppTest.
        at = AppTest.from_function(_report_section, default_timeout=180)
        _click(at.run(), "Evaluate and report")
        assert not at.exception and not at.error, [e.value for e in at.error]
        table = at.dataframe[-1].value
        assert sorted(table["config"]) == ["lora_r=16 dataset=support@v1", "lora_r=8 dataset=support@v1"]
        assert list(table["verdict"]).count("winner") == 1
        assert any("held" in m.value and "n = 8" in m.value for m in at.markdown)
    finally:
        cancel_group(ui_env, "ui-sweep")


@pytest.mark.slow
def test_finished_ablation_reports_each_steps_verdict(ui_env):
    at = page().run()
    at.selectbox(key="abl_ref").select("support@v2").run()
    at.selectbox(key="abl_suite").select("held")
    at.number_input(key="abl_steps").set_value(2)
    _click(at, "Queue ablation")
    assert not at.error and at.success, [e.value for e in at.error]
    (group,) = list_groups(ui_env, kind="ablation")
    try:
        for run_id in group["runs"]:
            assert jobs.wait(ui_env, run_id, timeout_s=240)["state"] == "completed"
        at = AppTest.from_function(_report_section, default_timeout=180)
        _click(at.run(), "Evaluate and report")
        assert not at.exception and not at.error, [e.value for e in at.error]
        table = at.dataframe[-1].value
        assert list(table["step"]) == ["v1 -> v2"] and list(table["metric"]) == ["exact_match"]
        assert table["verdict"][0] in ("helped", "hurt", "no measurable effect"), table
    finally:
        cancel_group(ui_env, group["id"])


def test_sweep_form_queues_a_halving_sweep(ui_env):
    """The form's halving option is the CLI's `--halving --eta`: the group records it, each run
    carries its halving settings and evaluates at the chosen rungs."""
    from training import halving

    at = page().run()
    _fill_sweep(at, "lora_r=8,16")
    at.checkbox(key="sweep_halving").check()
    at.number_input(key="sweep_eta").set_value(3)
    at.number_input(key="sweep_eval_steps").set_value(1)
    _click(at, "Queue sweep")
    try:
        assert not at.exception
        assert not at.error, [e.value for e in at.error]
        [group] = list_groups(ui_env)
        spec = get_group(ui_env, group["id"])["spec"]
        assert (spec["halving"], spec["eta"]) == (True, 3)
        rows = experiments(ui_env)
        assert {r["config"]["eval_steps"] for r in rows} == {1}
        for r in rows:
            settings = halving.read_settings(jobs.get_run(ui_env, r["run_id"])["run_dir"])
            assert settings == {"group": group["id"], "eta": 3}, settings
    finally:
        cancel_group(ui_env, "ui-sweep")
