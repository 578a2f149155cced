"""Metrics to experiment trackers (TrainConfig.report_to): TensorBoard, MLflow, W&B.

Why transformers' own callbacks: they already log every Trainer metric; this module only
points them at the run: TensorBoard event files go to `RUN_DIR/tensorboard/`; MLflow uses
`$MLFLOW_TRACKING_URI` or a local file store `<workspace>/mlruns` (beside `runs/`), experiment
`$MLFLOW_EXPERIMENT_NAME` or "tuning-studio"; every tracker names the run by its run id, so
`runs/<id>`, the TensorBoard folder, the MLflow run and the W&B run share one name. The MLflow
run also gets the TrainConfig as `studio.*` params and the provenance as `studio.*` tags, and a
resumed job continues the same MLflow run (its id is kept in `RUN_DIR/tracking.json`).
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

from kernel.errors import StudioError

TENSORBOARD_DIR = "tensorboard"
TRACKING_FILE = "tracking.json"
DEFAULT_EXPERIMENT = "tuning-studio"
_PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}
_PROVENANCE_TAGS = ("dataset_ref", "rows_sha256", "train_file_sha256", "formatted_sha256",
                    "base_model_sha256", "code_version", "git_commit")


def check_available(cfg) -> None:
    """A clear error at launch for a tracker whose package is missing."""
    for name in cfg.report_to:
        if importlib.util.find_spec(_PACKAGES[name]) is None:
            hint = "mlflow-skinny" if name == "mlflow" else _PACKAGES[name]
            raise StudioError(f"report_to {name}: the {_PACKAGES[name]} package is not "
                              f"installed (pip install {hint}), or remove {name} from report_to")


def mlflow_uri(run_dir: str | Path) -> str:
    """$MLFLOW_TRACKING_URI, else a file store in the run's workspace (or the run folder)."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    from kernel.workspace import DB_FILENAME

    run_dir = Path(run_dir).resolve()
    workspace = run_dir.parent.parent
    root = workspace if (workspace / DB_FILENAME).exists() else run_dir
    return (root / "mlruns").as_uri()


def read_tracking(run_dir: str | Path) -> dict:
    path = Path(run_dir) / TRACKING_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def start_mlflow_run(run_dir: Path, cfg) -> str:
    """Start (or, on resume, reopen) the run's MLflow run with its config and provenance."""
    import mlflow

    from training import provenance

    uri = mlflow_uri(run_dir)
    if uri.startswith("file:"):
        # MLflow 3 keeps the file store only on request; it needs no server and no database.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT)
    previous = read_tracking(run_dir).get("mlflow", {})
    if previous.get("run_id") and previous.get("tracking_uri") == uri:
        run = mlflow.start_run(run_id=previous["run_id"])
    else:
        run = mlflow.start_run(run_name=run_dir.name)
        params = {f"studio.{k}": ",".join(map(str, v)) if isinstance(v, list) else v
                  for k, v in cfg.to_dict().items()}
        mlflow.log_params(params)
        prov = provenance.read(run_dir)
        mlflow.set_tags({"studio.run_id": run_dir.name,
                         **{f"studio.{k}": prov[k] for k in _PROVENANCE_TAGS if prov.get(k)}})
    info = {"run_id": run.info.run_id, "experiment_id": run.info.experiment_id,
            "tracking_uri": uri}
    (run_dir / TRACKING_FILE).write_text(json.dumps({"mlflow": info}, indent=2))
    return run.info.run_id


def callbacks(cfg, run_dir: str | Path) -> list:
    """The transformers callbacks for `cfg.report_to`, pointed at this run."""
    from transformers.integrations import MLflowCallback, TensorBoardCallback, WandbCallback

    run_dir = Path(run_dir)

    class StudioMLflowCallback(MLflowCallback):
        """transformers' MLflow logging, into a run this module started (named, tagged)."""

        def setup(self, args, state, model):
            if state.is_world_process_zero:
                start_mlflow_run(run_dir, cfg)
            super().setup(args, state, model)  # sees the active run: logs args and metrics to it

        def on_train_end(self, args, state, control, **kwargs):
            super().on_train_end(args, state, control, **kwargs)
            if self._initialized and state.is_world_process_zero and self._ml_flow.active_run():
                self._ml_flow.end_run()

    out = []
    for name in cfg.report_to:
        if name == "tensorboard":
            tb = TensorBoardCallback()
            tb.logging_dir = tb.logging_dir or str(run_dir / TENSORBOARD_DIR)
            out.append(tb)
        elif name == "mlflow":
            out.append(StudioMLflowCallback())
        elif name == "wandb":
            out.append(WandbCallback())
    return out
