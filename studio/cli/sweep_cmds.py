"""CLI for `studio sweep`: queue a grid of configs, evaluate, pick the winner; list, show and
cancel sweeps. Thin layer over `evals.sweep` and `training.groups`.

    studio sweep --config run.yaml --grid lora_r=8,16 lr=1e-4,3e-4 \\
        --dataset support@v5,support@v7 --suite held [--seeds 0,1] [--budget N] [--random K]
    studio sweep list ; studio sweep show NAME ; studio sweep cancel NAME
"""

from __future__ import annotations

import secrets

import click

from evals.backends import BACKENDS
from studio.cli.common import cli, emit, get_store, json_option, table

ACTIONS = ("list", "show", "cancel")


def _show(rep: dict, as_json: bool) -> None:
    from evals.sweep import report_table

    head = (f"sweep {rep['name']} ({rep['sweep']}): {len(rep['ranking'])} config(s) evaluated "
            f"on suite {rep['suite']} (n = {rep['n_examples']}), metric {rep['metric']}")
    emit(rep, as_json, human=f"{head}\n{table(report_table(rep))}\n{rep['verdict']}")


def _finish(store, ref: str, backend: str, as_json: bool) -> None:
    from evals.sweep import finish

    _show(finish(store, ref, backend=backend,
                 on_event=lambda text: click.echo(text, err=True)), as_json)


def _action(store, items: tuple[str, ...], backend: str, as_json: bool) -> None:
    from training.groups import cancel_group, list_groups

    action, args = items[0], items[1:]
    if action == "list":
        groups = list_groups(store, kind="sweep")
        emit(groups, as_json, human=table([{"name": g["name"], "id": g["id"],
                                            "runs": len(g["runs"]), "created": g["created_at"]}
                                           for g in groups]) if groups else "no sweeps")
        return
    if len(args) != 1:
        raise click.UsageError(f"studio sweep {action} NAME: give exactly one sweep name or id")
    if action == "cancel":
        cancelled = cancel_group(store, args[0])
        emit({"sweep": args[0], "cancelled": cancelled}, as_json,
             human=f"sweep {args[0]}: cancelled {len(cancelled)} unfinished run(s)")
    else:
        _finish(store, args[0], backend, as_json)


@cli.command("sweep")
@click.argument("items", nargs=-1)
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="YAML TrainConfig shared by every run (the axes override it).")
@click.option("--grid", "grid", multiple=True, help="An axis FIELD=V1,V2 (TrainConfig field, "
              "or lr/epochs); more axes follow as plain words: --grid lora_r=8,16 lr=1e-4,3e-4.")
@click.option("--dataset", "datasets", default=None,
              help="Dataset versions to sweep over, comma-separated (an axis like the others).")
@click.option("--replay", default=None, help="Dataset whose rows the replay_fraction axis mixes "
              "in (--grid replay_fraction=0,0.1,0.3).")
@click.option("--suite", default=None, help="Held-out eval suite that picks the winner.")
@click.option("--metric", default=None, help="Suite metric that ranks configs (default: the "
              "suite's first).")
@click.option("--seeds", default=None, help="Comma-separated seeds per config (default: the "
              "config's seed).")
@click.option("--budget", type=int, default=None, help="Refuse to queue more than N runs.")
@click.option("--random", "random_k", type=int, default=None,
              help="Run K configs sampled from the grid instead of all of it.")
@click.option("--sample-seed", type=int, default=0, show_default=True,
              help="Seed of the --random sample.")
@click.option("--halving", is_flag=True, help="Successive halving: at each eval step, a run "
              "whose eval loss is not among the best 1/eta so far stops itself (also with "
              "--detach); halved runs are no winner candidates.")
@click.option("--eta", type=int, default=2, show_default=True, help="Halving keeps 1/eta.")
@click.option("--name", default=None, help="Sweep (run group) name; default sweep-<random>.")
@click.option("--backend", type=click.Choice(BACKENDS), default="hf", show_default=True,
              help="Generation backend for the held-out evaluation.")
@click.option("--detach", is_flag=True, help="Queue the runs and return; `studio sweep show "
              "NAME` waits, evaluates and reports later.")
@json_option
@click.pass_context
def sweep(ctx: click.Context, items: tuple[str, ...], config_path: str | None,
          grid: tuple[str, ...], datasets: str | None, replay: str | None, suite: str | None,
          metric: str | None,
          seeds: str | None, budget: int | None, random_k: int | None, sample_seed: int,
          halving: bool, eta: int, name: str | None, backend: str, detach: bool,
          as_json: bool) -> None:
    """Queue one run per config of a grid (x seeds), evaluate each on a held-out suite and pick
    the winner with paired statistics against the runner-up (significantly better or tied).
    Also: `studio sweep list`, `studio sweep show NAME`, `studio sweep cancel NAME`."""
    from evals.sweep import SweepSpec, parse_grid, start
    from training.config import TrainConfig
    from training.groups import parse_seeds

    store = get_store(ctx)
    if items and items[0] in ACTIONS:
        _action(store, items, backend, as_json)
        return
    if not config_path or not suite:
        raise click.UsageError("studio sweep: --config and --suite are required to start a "
                               "sweep (or: studio sweep list|show NAME|cancel NAME)")
    axes = parse_grid([*grid, *items],
                      [d.strip() for d in datasets.split(",") if d.strip()] if datasets else None)
    spec = SweepSpec(name=name or f"sweep-{secrets.token_hex(3)}", suite=suite, axes=axes,
                     seeds=parse_seeds(seeds) if seeds else [], metric=metric, budget=budget,
                     random=random_k, sample_seed=sample_seed, halving=halving, eta=eta,
                     replay=replay)
    started = start(store, TrainConfig.from_yaml(config_path), spec)
    if detach:
        emit(started, as_json, human=f"queued sweep {started['name']} ({started['sweep']}): "
             f"{len(started['runs'])} runs; `studio sweep show {started['name']}` reports")
        return
    click.echo(f"sweep {started['name']}: {len(started['runs'])} runs queued, waiting", err=True)
    _finish(store, started["sweep"], backend, as_json)
