"""CLI for `studio ablate` (queue, evaluate, attribute) and `studio ablation ID` (its report).

Thin layer over `evals.ablation`; the runs are ordinary durable jobs (`studio runs`).
"""

from __future__ import annotations

import click

from evals.backends import BACKENDS
from kernel.errors import StudioError
from studio.cli.common import cli, emit, get_store, json_option, table


def _ints(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError as exc:
        raise StudioError(f"--seeds {text!r}: expected integers separated by commas") from exc


def _show(rep: dict, as_json: bool) -> None:
    from evals.ablation import report_table

    head = (f"ablation {rep['ablation']}: {len(rep['versions'])} versions x "
            f"{len(rep['seeds'])} seed(s) on suite {rep['suite']} (n = {rep['n_examples']})")
    emit(rep, as_json, human=head + "\n" + table(report_table(rep)))


def _finish(store, ablation_id: str, backend: str, as_json: bool) -> None:
    from evals.ablation import finish

    def on_run(run: dict, state: str) -> None:
        click.echo(f"run {run['run_id']} ({run['version_ref']}, seed {run['seed']}): {state}",
                   err=True)

    _show(finish(store, ablation_id, backend=backend, on_run=on_run), as_json)


@cli.command("ablate")
@click.argument("ref")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="YAML TrainConfig shared by every run (dataset and seed are set per run).")
@click.option("--suite", required=True, help="Held-out eval suite the runs are compared on.")
@click.option("--seeds", default=None, help="Comma-separated seeds (default: the config's seed).")
@click.option("--steps", default=None, help="Comma-separated versions of the lineage to compare "
              "(default: every version from the import to REF).")
@click.option("--backend", type=click.Choice(BACKENDS), default="hf", show_default=True,
              help="Generation backend.")
@click.option("--detach", is_flag=True, help="Queue the runs and return; `studio ablation ID` "
              "waits, evaluates and reports later.")
@json_option
@click.pass_context
def ablate(ctx: click.Context, ref: str, config_path: str, suite: str, seeds: str | None,
           steps: str | None, backend: str, detach: bool, as_json: bool) -> None:
    """Train one run per curation step of REF's lineage (and seed) with identical settings and
    report the paired effect of each step with CIs over seeds and examples (Holm-adjusted)."""
    from evals.ablation import get, start
    from training.config import TrainConfig

    store = get_store(ctx)
    cfg = TrainConfig.from_yaml(config_path)
    step_list = [s.strip() for s in steps.split(",") if s.strip()] if steps else None
    ablation_id = start(store, ref, cfg, suite, seeds=_ints(seeds), steps=step_list)
    if detach:
        ab = get(store, ablation_id)
        emit({"ablation": ablation_id, "runs": ab["runs"]}, as_json,
             human=f"queued ablation {ablation_id} ({len(ab['runs'])} runs)")
        return
    click.echo(f"ablation {ablation_id}: waiting for its runs", err=True)
    _finish(store, ablation_id, backend, as_json)


@cli.command("ablation")
@click.argument("ablation_id")
@click.option("--backend", type=click.Choice(BACKENDS), default="hf", show_default=True)
@json_option
@click.pass_context
def ablation_report(ctx: click.Context, ablation_id: str, backend: str, as_json: bool) -> None:
    """Wait for an ablation's runs (if needed), evaluate (cached) and print its report."""
    _finish(get_store(ctx), ablation_id, backend, as_json)
