"""Trackers: TensorBoard event files by default, a real MLflow file store on request, read
back with each tool's own reader and compared with the run's metrics.jsonl."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

from kernel.errors import StudioError
from kernel.status import read_metrics
from training import provenance, synthetic, tracking
from training.config import TrainConfig
from training.data import export_split, split_rows
from training.preflight import preflight
from training.trainer import build_trainer, latest_hf_checkpoint


def test_report_to_defaults_parses_and_rejects_unknown_trackers():
    assert TrainConfig().report_to == ["tensorboard"]
    assert TrainConfig(report_to="mlflow, tensorboard").report_to == ["mlflow", "tensorboard"]
    assert TrainConfig(report_to="none").report_to == []
    with pytest.raises(StudioError, match=r"report_to \['comet'\] is not among"):
        TrainConfig(report_to=["comet"])
    with pytest.raises(StudioError, match="unknown field"):
        TrainConfig.from_dict({"report_too": "mlflow"})


def test_a_tracker_whose_package_is_missing_fails_at_launch_with_a_clear_error():
    tracking.check_available(TrainConfig(report_to=["tensorboard", "mlflow"]))  # installed here
    if importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here; the missing-package error cannot be shown")
    with pytest.raises(StudioError, match=r"report_to wandb: the wandb package is not installed"):
        tracking.check_available(TrainConfig(report_to=["wandb"]))


def test_mlflow_store_is_the_workspace_or_the_run_folder(store, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run_dir = store.workspace.run_dir("train-1")
    assert tracking.mlflow_uri(run_dir) == (store.workspace.root / "mlruns").as_uri()
    assert tracking.mlflow_uri(tmp_path / "a" / "b") == (tmp_path / "a" / "b" / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracker:5000")
    assert tracking.mlflow_uri(run_dir) == "http://tracker:5000"


def _train(cfg, run_dir, train, evals, resume=False):
    trainer = build_trainer(cfg, run_dir, train, evals)
    trainer.train(resume_from_checkpoint=latest_hf_checkpoint(run_dir) if resume else None)


@pytest.mark.slow
def test_tensorboard_and_mlflow_get_the_same_metrics_as_metrics_jsonl(store, tiny_model,
                                                                      monkeypatch):
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("STUDIO_TORCH_THREADS", "1")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run_dir = store.workspace.run_dir("train-tracked")
    run_dir.mkdir()
    rows = synthetic.generate(["repeat_twice"], 80, seed=2)
    cfg = preflight(TrainConfig(base_model=str(tiny_model), data_file="x", max_steps=8,
                                eval_steps=4, save_steps=4, logging_steps=2, batch_size=8,
                                report_to=["tensorboard", "mlflow"]))
    train, evals = split_rows(rows, cfg.eval_fraction, cfg.seed)
    export_split(run_dir, train, evals)
    prov = provenance.record(store, cfg, run_dir, train, evals)
    _train(cfg, run_dir, train, evals)

    records = read_metrics(run_dir)
    losses = {r["step"]: r["loss"] for r in records if "loss" in r}
    eval_losses = {r["step"]: r["eval_loss"] for r in records if "eval_loss" in r}
    assert len(losses) >= 4 and sorted(eval_losses) == [4, 8]

    acc = EventAccumulator(str(run_dir / tracking.TENSORBOARD_DIR)).Reload()
    tb = {e.step: e.value for e in acc.Scalars("train/loss")}
    assert tb.keys() == losses.keys()
    assert all(tb[s] == pytest.approx(losses[s], rel=1e-6) for s in losses)
    assert {e.step for e in acc.Scalars("eval/loss")} == {4, 8}

    info = tracking.read_tracking(run_dir)["mlflow"]
    assert info["tracking_uri"] == (store.workspace.root / "mlruns").as_uri()
    client = MlflowClient(info["tracking_uri"])
    (found,) = client.search_runs([info["experiment_id"]])
    assert found.info.run_id == info["run_id"] and found.info.run_name == run_dir.name
    assert found.info.status == "FINISHED"
    params, tags = found.data.params, found.data.tags
    assert params["studio.lora_r"] == str(cfg.lora_r) and params["studio.max_steps"] == "8"
    assert params["studio.target_modules"] == ",".join(cfg.target_modules)
    assert float(params["learning_rate"]) == cfg.learning_rate  # transformers' own params
    assert tags["studio.rows_sha256"] == prov["rows_sha256"]
    assert tags["studio.base_model_sha256"] == prov["base_model_sha256"]
    history = {m.step: m.value for m in client.get_metric_history(info["run_id"], "loss")}
    assert history.keys() == losses.keys()
    assert all(history[s] == pytest.approx(losses[s], rel=1e-6) for s in losses)
    evals_hist = {m.step: m.value for m in client.get_metric_history(info["run_id"], "eval_loss")}
    assert evals_hist == pytest.approx(eval_losses, rel=1e-6)

    # A resumed job continues the same MLflow run (no second run under the same name).
    cfg12 = TrainConfig.from_dict({**cfg.to_dict(), "max_steps": 12})
    _train(cfg12, run_dir, train, evals, resume=True)
    assert len(client.search_runs([info["experiment_id"]])) == 1
    steps = [m.step for m in client.get_metric_history(info["run_id"], "loss")]
    assert max(steps) == 12 and os.path.isdir(run_dir / "checkpoints" / "step-12")
    assert json.loads((run_dir / tracking.TRACKING_FILE).read_text())["mlflow"] == info
