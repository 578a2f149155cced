"""Shared CLI plumbing: the root group, the workspace option, JSON vs human output."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import click

from curation.store import Store
from curation.workspace import Workspace


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--workspace", "-w", type=click.Path(file_okay=False), envvar="STUDIO_WORKSPACE",
              default=None, help="Workspace folder (default ./studio-workspace; env STUDIO_WORKSPACE).")
@click.pass_context
def cli(ctx: click.Context, workspace: str | None) -> None:
    """Tuning Studio: curate instruction data, tune LoRA adapters, evaluate checkpoints."""
    ctx.ensure_object(dict)
    ctx.obj["workspace_arg"] = workspace


def get_workspace(ctx: click.Context) -> Workspace:
    root = ctx.find_root()
    return Workspace.open((root.obj or {}).get("workspace_arg"))


def get_store(ctx: click.Context) -> Store:
    return Store(get_workspace(ctx))


json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


def _default(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, (dt.datetime, dt.date)):
        return obj.isoformat()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)


def emit(data: Any, as_json: bool, human: str | None = None) -> None:
    """Print `data` as JSON when --json, else the human text (or a readable rendering)."""
    if as_json:
        click.echo(json.dumps(data, default=_default, indent=2))
    elif human is not None:
        click.echo(human)
    else:
        click.echo(render(data))


def render(data: Any) -> str:
    """A plain rendering: list of dicts -> aligned table, dict -> key: value lines."""
    if isinstance(data, list) and data and isinstance(data[0], dict):
        return table(data)
    if isinstance(data, dict):
        width = max((len(str(k)) for k in data), default=0)
        return "\n".join(f"{str(k).ljust(width)}  {_cell(v)}" for k, v in data.items())
    if isinstance(data, list) and not data:
        return "(none)"
    return json.dumps(data, default=_default, indent=2)


def _cell(value: Any, limit: int = 60) -> str:
    if isinstance(value, (dict, list)):
        value = json.dumps(value, default=_default)
    text = "" if value is None else str(value)
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def table(rows: list[dict], columns: list[str] | None = None) -> str:
    columns = columns or list(rows[0].keys())
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)
