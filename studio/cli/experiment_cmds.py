"""CLI for the experiments table and the playground: `studio experiments` and `studio chat`.

Thin layers over `evals.experiments` (every run with its group, data version, key config and
held-out metrics; cancel the rest of a group) and `evals.playground` (answers from checkpoints
through the evaluation backends).
"""

from __future__ import annotations

import click

from evals.backends import BACKENDS
from kernel.errors import StudioError
from studio.cli.common import cli, emit, get_store, json_option, table


@cli.command("experiments")
@click.option("--sort", "sort_metric", default=None, metavar="SUITE/METRIC",
              help="Order by a held-out metric, best first (runs without it last).")
@click.option("--group", default=None, help="Only the runs of this group (seed group, sweep, ablation).")
@click.option("--cancel-rest", is_flag=True,
              help="With --group: cancel its queued and running runs (finished ones stay).")
@json_option
@click.pass_context
def experiments_cmd(ctx: click.Context, sort_metric: str | None, group: str | None,
                    cancel_rest: bool, as_json: bool) -> None:
    """Every training run with its group, dataset version, key config, state and the held-out
    metrics of its last evaluated checkpoint."""
    from evals import experiments as X

    store = get_store(ctx)
    if cancel_rest:
        if not group:
            raise StudioError("experiments: --cancel-rest needs --group GROUP_ID")
        cancelled = X.cancel_rest(store, group)
        emit({"group": group, "cancelled": cancelled}, as_json,
             human=f"cancelled {len(cancelled)} run(s) of {group}: {', '.join(cancelled)}")
        return
    rows = X.group_members(store, group) if group else X.experiments(store)
    names = X.metric_names(rows)
    if sort_metric:
        if sort_metric not in names:
            raise StudioError(f"experiments: --sort {sort_metric!r} is not a stored metric "
                              f"(have: {', '.join(names) or 'none; evaluate a run first'})")
        rows = X.sort_by_metric(rows, sort_metric)
    flat = X.table(rows)
    emit({"runs": rows, "metrics": names}, as_json,
         human=table(flat) if flat else "no training runs yet")


@cli.command("chat")
@click.argument("checkpoint")
@click.argument("prompt")
@click.option("--with-base", is_flag=True, help="Also answer with the checkpoint's base model.")
@click.option("--system", default=None, help="A system message before the prompt.")
@click.option("--backend", type=click.Choice(BACKENDS), default="hf", show_default=True,
              help="Generation backend (the same ones evaluation uses).")
@click.option("--max-new-tokens", type=int, default=128, show_default=True)
@click.option("--temperature", type=float, default=0.0, show_default=True, help="0 = greedy.")
@click.option("--seed", type=int, default=0, show_default=True)
@json_option
@click.pass_context
def chat_cmd(ctx: click.Context, checkpoint: str, prompt: str, with_base: bool,
             system: str | None, backend: str, max_new_tokens: int, temperature: float,
             seed: int, as_json: bool) -> None:
    """Answer PROMPT with CHECKPOINT (`RUN/step-N`, `base:MODEL` or a folder), optionally next
    to its base model."""
    from evals import playground as P
    from evals.types import SamplingConfig

    store = get_store(ctx)
    sampling = SamplingConfig(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
    checkpoints = [checkpoint] + ([P.base_of(store, checkpoint)] if with_base else [])
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": prompt}]
    replies = P.chat_once(store, checkpoints, messages, sampling, backend=backend)
    emit({"replies": [r.to_dict() for r in replies], "sampling": sampling.to_dict()}, as_json,
         human="\n\n".join(f"[{r.checkpoint}]\n{r.text}" for r in replies))
