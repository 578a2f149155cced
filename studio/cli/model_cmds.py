"""CLI for base models: `studio model import SOURCE`, `studio model list`, `studio model show NAME`.

Thin layer over `training.models`; the `model` group itself lives in `training_cmds`.
"""

from __future__ import annotations

import click

from studio.cli.common import emit, get_store, json_option, table
from studio.cli.training_cmds import model_group


@model_group.command("import")
@click.argument("source")
@click.option("--name", default=None, help="Name in the workspace (default: from SOURCE).")
@json_option
@click.pass_context
def import_cmd(ctx: click.Context, source: str, name: str | None, as_json: bool) -> None:
    """Import SOURCE as models/NAME: a GGUF file, an HF model folder, a hub name (ORG/MODEL,
    online or in the HF cache) or a named offline model (smollm2-135m-instruct)."""
    from training.models import import_model

    info = import_model(get_store(ctx), source, name=name,
                        log=lambda line: click.echo(line, err=True))
    emit(info.to_dict(), as_json,
         human=f"imported {info.name}: {info.architecture}, {info.n_parameters:,} parameters, "
               f"context {info.context_length:,}, template {info.template_source} -> {info.path}")


@model_group.command("list")
@json_option
@click.pass_context
def list_cmd(ctx: click.Context, as_json: bool) -> None:
    """Imported models (their names work wherever a base model is asked for)."""
    from training.models import list_models

    models = list_models(get_store(ctx))
    if as_json:
        emit([m.to_dict() for m in models], as_json)
        return
    if not models:
        click.echo("(none) - `studio model import smollm2-135m-instruct` adds one")
        return
    click.echo(table([{"name": m.name, "architecture": m.architecture,
                       "parameters": f"{m.n_parameters:,}", "context": m.context_length,
                       "template": m.template_source, "source": m.source} for m in models]))


@model_group.command("show")
@click.argument("name")
@json_option
@click.pass_context
def show_cmd(ctx: click.Context, name: str, as_json: bool) -> None:
    """One imported model: source, size, architecture, template, hash, folder."""
    from training.models import get_model

    info = get_model(get_store(ctx), name).to_dict()
    if not as_json:
        info["chat_template"] = info["chat_template"][:60] + "..."
    emit(info, as_json)
