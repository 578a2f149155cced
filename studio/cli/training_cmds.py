"""CLI for training: `studio model build-tiny` (import/list/show: `model_cmds`), `studio train`, `studio runs`, `studio run ...`.

Thin layer over `training.*`: parse flags, call the library, render. Heavy imports stay inside
the commands so `studio --help` stays fast.
"""

from __future__ import annotations

import sys
import time

import click

from kernel.errors import StudioError
from studio.cli.common import cli, emit, get_store, json_option, render, table
from studio.cli.config_options import dataclass_options, field_values
from training.config import TrainConfig


@cli.group("model")
def model_group() -> None:
    """Base models: import, list, show, build the offline tiny model."""


@model_group.command("build-tiny")
@click.argument("path", type=click.Path(file_okay=False))
@click.option("--steps", type=int, default=None, help="Pretraining steps (default: ~3 min on 2 cores).")
@click.option("--seed", type=int, default=0, show_default=True)
@json_option
def build_tiny(path: str, steps: int | None, seed: int, as_json: bool) -> None:
    """Build the offline tiny Llama model + tokenizer at PATH (HF layout, safetensors)."""
    import json

    from training.tiny_model import REPORT_FILE, TinyModelConfig, build_tiny_model

    kwargs = {"seed": seed} if steps is None else {"seed": seed, "pretrain_steps": steps}
    cfg = TinyModelConfig(**kwargs)
    out = build_tiny_model(path, cfg, log=lambda line: click.echo(line, err=True))
    report = json.loads((out / REPORT_FILE).read_text())
    emit({"path": str(out.resolve()), **report}, as_json,
         human=f"built {out.resolve()} ({report['n_parameters']:,} parameters, "
               f"final loss {report['pretraining']['final_loss']:.3f})")


@cli.command("train")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="YAML file of TrainConfig fields; the flags below override it.")
@dataclass_options(TrainConfig)
@click.option("--set", "extra", multiple=True, metavar="FIELD=VALUE",
              help="Any TrainConfig field by name, value in YAML syntax (repeatable).")
@click.option("--seeds", default=None, metavar="S1,S2,...",
              help="One queued run per seed (e.g. 0,1,2), recorded as a group for `studio compare`.")
@click.option("--wait", is_flag=True, help="Follow the run in the foreground until it ends.")
@json_option
@click.pass_context
def train(ctx: click.Context, config_path: str | None, extra: tuple[str, ...], wait: bool,
          as_json: bool, seeds: str | None, **fields) -> None:
    """Launch a LoRA SFT run as a background job (validated before anything starts)."""
    from kernel import jobs
    from training.start_run import launch_training

    cfg = train_config(config_path, fields, extra)
    store = get_store(ctx)
    if seeds is not None:
        _train_group(store, cfg, seeds, fields.get("seed") is not None, wait, as_json)
        return
    run_id = launch_training(store, cfg)
    if not wait:
        emit({"run_id": run_id, "state": "queued"}, as_json, human=f"started run {run_id}")
        return

    def show(record: dict) -> None:
        if not as_json and ("loss" in record or "eval_loss" in record):
            parts = [f"step {record['step']}"]
            parts += [f"{k} {record[k]:.4g}" for k in ("loss", "eval_loss", "lr", "tokens_per_s")
                      if isinstance(record.get(k), (int, float))]
            click.echo("  ".join(parts), err=True)

    run = jobs.wait(store, run_id, on_metrics=show)
    _finish(run, as_json)


def _train_group(store, cfg, seeds: str, seed_given: bool, wait: bool, as_json: bool) -> None:
    from kernel import jobs
    from training.start_run import launch_group

    if seed_given:
        raise StudioError("--seed and --seeds exclude each other: give the seeds in --seeds")
    group_id, run_ids = launch_group(store, cfg, seeds)
    if not wait:
        emit({"group_id": group_id, "run_ids": run_ids, "state": "queued"}, as_json,
             human=f"started group {group_id}: runs {', '.join(run_ids)}")
        return
    runs = [_summary(jobs.wait(store, run_id)) for run_id in run_ids]
    emit({"group_id": group_id, "runs": runs}, as_json,
         human="\n".join(f"{r['run_id']} ({r['name']}): {r['state']}" for r in runs))
    if any(r["state"] != "completed" for r in runs):
        sys.exit(1)


def train_config(config_path: str | None, fields: dict, extra: tuple[str, ...] = ()) -> TrainConfig:
    """The TrainConfig of `studio train`: the YAML file, then flags, then `--set` on top."""
    import yaml

    overrides = field_values(TrainConfig, fields)
    for item in extra:
        key, sep, value = item.partition("=")
        if not sep:
            raise StudioError(f"--set {item!r}: expected FIELD=VALUE")
        overrides[key.strip()] = yaml.safe_load(value)
    if config_path:
        return TrainConfig.from_yaml(config_path, overrides)
    return TrainConfig.from_dict(overrides, source="command line")


def _finish(run: dict, as_json: bool) -> None:
    summary = _summary(run)
    emit(summary, as_json)
    if run["state"] != "completed":
        sys.exit(1)


def _summary(run: dict) -> dict:
    return {"run_id": run["id"], "kind": run["kind"], "name": run.get("name"),
            "state": run["state"], "error": run.get("error"),
            "progress": run["status"].get("progress"), "step": run["status"].get("step"),
            "metrics": run["status"].get("metrics"),
            "checkpoints": [c["id"] for c in run["checkpoints"]], "run_dir": run["run_dir"]}


@cli.command("runs")
@click.option("--kind", default=None, help="Only runs of this kind (train, eval, ...).")
@json_option
@click.pass_context
def runs(ctx: click.Context, kind: str | None, as_json: bool) -> None:
    """List jobs, newest first (ingesting what running jobs wrote)."""
    from kernel.jobs import list_runs

    rows = list_runs(get_store(ctx), kind=kind)
    if as_json or not rows:
        emit(rows, as_json)
        return
    view = [{"id": r["id"], "kind": r["kind"], "state": r["state"],
             "progress": "" if r["progress"] is None else f"{100 * r['progress']:.0f}%",
             "step": r["step"], "name": r["name"], "created": r["created_at"]} for r in rows]
    click.echo(table(view))


@cli.group("run")
def run_group() -> None:
    """Inspect and control one job."""


@run_group.command("show")
@click.argument("run_id")
@json_option
@click.pass_context
def run_show(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """State, progress, last metrics and checkpoints of a run."""
    from kernel.jobs import get_run
    from training import provenance

    store = get_store(ctx)
    run = get_run(store, run_id)
    prov = provenance.get(store, run_id) if run["kind"] == "train" else {}
    data = {**_summary(run), "last_metrics": run["last_metrics"], "config": run["config"],
            "provenance": prov or None}
    if as_json:
        emit(data, as_json)
        return
    click.echo(render({k: v for k, v in data.items() if k not in ("config", "provenance")}))
    if prov:
        click.echo("provenance:")
        click.echo(render({k: v for k, v in prov.items() if k not in ("config", "run_id")}))


@run_group.command("logs")
@click.argument("run_id")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until the run ends.")
@click.option("--lines", "-n", type=int, default=50, show_default=True)
@json_option
@click.pass_context
def run_logs(ctx: click.Context, run_id: str, follow: bool, lines: int, as_json: bool) -> None:
    """The run's log (tail), optionally followed."""
    from kernel.jobs import get_run
    from kernel.status import LOG_FILE, TERMINAL, log_tail

    store = get_store(ctx)
    run = get_run(store, run_id)
    if as_json or not follow:
        emit({"run_id": run_id, "state": run["state"], "log": log_tail(run["run_dir"], lines)},
             as_json, human=log_tail(run["run_dir"], lines))
        return
    path = f"{run['run_dir']}/{LOG_FILE}"
    offset = 0
    while True:
        try:
            with open(path, "rb") as fh:
                fh.seek(offset)
                chunk = fh.read()
        except FileNotFoundError:
            chunk = b""
        if chunk:
            offset += len(chunk)
            click.echo(chunk.decode("utf-8", errors="replace"), nl=False)
        if run["state"] in TERMINAL and not chunk:
            return
        time.sleep(0.5)
        run = get_run(store, run_id)


@run_group.command("cancel")
@click.argument("run_id")
@json_option
@click.pass_context
def run_cancel(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Kill the run's whole process group and mark it cancelled."""
    from kernel.jobs import cancel

    run = cancel(get_store(ctx), run_id)
    emit(_summary(run), as_json, human=f"cancelled {run_id}")


@run_group.command("resume")
@click.argument("run_id")
@click.option("--wait", is_flag=True, help="Follow the run until it ends.")
@json_option
@click.pass_context
def run_resume(ctx: click.Context, run_id: str, wait: bool, as_json: bool) -> None:
    """Relaunch a failed or cancelled run from its last checkpoint."""
    from kernel import jobs

    store = get_store(ctx)
    run = jobs.resume(store, run_id)
    if wait:
        run = jobs.wait(store, run_id)
        _finish(run, as_json)
        return
    emit(_summary(run), as_json, human=f"resumed {run_id}")


@run_group.command("merge")
@click.argument("run_id")
@click.option("--checkpoint", default=None, help="step-N (default: the last checkpoint).")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False))
@click.option("--push", default=None, metavar="REPO",
              help="Also upload to this Hugging Face Hub model repo (fails at once when offline).")
@click.option("--private", is_flag=True, help="With --push: create the repo as private.")
@json_option
@click.pass_context
def run_merge(ctx: click.Context, run_id: str, checkpoint: str | None, out: str,
              push: str | None, private: bool, as_json: bool) -> None:
    """Merge a checkpoint's adapter into its base model and save the full model with a model
    card (README.md: base model, dataset version, config, eval results)."""
    from kernel.jobs import refresh
    from training.checkpoints import list_checkpoints
    from training.merge import export_model

    store = get_store(ctx)
    refresh(store)
    if checkpoint is None:
        found = list_checkpoints(store, run_id)
        if not found:
            raise StudioError(f"run {run_id} has no checkpoints")
        checkpoint_id = found[-1]["id"]
    else:
        checkpoint_id = checkpoint if "/" in checkpoint else f"{run_id}/{checkpoint}"
    result = export_model(store, checkpoint_id, out, push=push, private=private)
    human = f"merged into {result['path']} (model card README.md)"
    if result.get("pushed"):
        human += f"; pushed to {result['pushed']}"
    emit(result, as_json, human=human)
