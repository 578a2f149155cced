"""Shared CLI plumbing: the root group, the workspace option, JSON vs human output, exit codes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from kernel.store import Store
from kernel.workspace import Workspace

# Exit codes: scripts and CI branch on them, so each has one meaning (tests/test_cli_exit_codes.py).
EXIT_OK = 0
EXIT_USER_ERROR = 1        # bad input, missing dataset/suite/run: the one-line `error: ...`
EXIT_USAGE = 2             # click's usage error: unknown option, missing argument
EXIT_GATE_FAILED = 3       # `studio compare --fail-on-regression`: significant regression
EXIT_INTERNAL = 4          # a bug or a broken environment: traceback on stderr
EXIT_ABORTED = 130         # Ctrl+C

EXIT_CODES_HELP = f"""\b
Exit codes:
  {EXIT_OK}    ok
  {EXIT_USER_ERROR}    user error (one line `error: ...` on stderr)
  {EXIT_USAGE}    usage error (unknown option, missing argument)
  {EXIT_GATE_FAILED}    regression gate failed (compare --fail-on-regression)
  {EXIT_INTERNAL}    internal error (a bug: traceback on stderr)
  {EXIT_ABORTED}  aborted (Ctrl+C)
"""

WORKSPACE_HELP = "Workspace folder (default ./studio-workspace; env STUDIO_WORKSPACE)."


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_CODES_HELP)
@click.option("--workspace", "-w", type=click.Path(file_okay=False), envvar="STUDIO_WORKSPACE",
              default=None, help=WORKSPACE_HELP)
@click.pass_context
def cli(ctx: click.Context, workspace: str | None) -> None:
    """Tuning Studio: curate instruction data, tune LoRA adapters, evaluate checkpoints."""
    ctx.ensure_object(dict)
    ctx.obj["workspace_arg"] = workspace


def _set_workspace(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        root = ctx.find_root()
        root.ensure_object(dict)
        root.obj["workspace_arg"] = value


def workspace_param() -> click.Option:
    """`--workspace/-w` as typed after a subcommand: the same setting as the root group's."""
    return click.Option(["--workspace", "-w"], type=click.Path(file_okay=False), default=None,
                        expose_value=False, is_eager=True, callback=_set_workspace,
                        help=WORKSPACE_HELP)


def iter_commands(group: click.Command = cli, path: tuple[str, ...] = ()
                  ) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every command under `group` (groups included) with its path of names."""
    yield path, group
    if isinstance(group, click.Group):
        for name, sub in group.commands.items():
            yield from iter_commands(sub, (*path, name))


def add_workspace_option_everywhere() -> None:
    """Give every subcommand `--workspace`, so `studio ui --workspace DIR` works like
    `studio -w DIR ui` (called once the command modules are registered)."""
    for path, cmd in iter_commands():
        if path and not any("--workspace" in getattr(p, "opts", ()) for p in cmd.params):
            cmd.params.append(workspace_param())


def get_workspace(ctx: click.Context) -> Workspace:
    root = ctx.find_root()
    return Workspace.open((root.obj or {}).get("workspace_arg"))


def get_store(ctx: click.Context) -> Store:
    return Store(get_workspace(ctx))


class _JsonMode:
    """While a `--json` command runs, stdout carries its one JSON document and nothing else.

    Everything else written to stdout goes to stderr: Python's `sys.stdout` (print, click.echo,
    logging handlers bound to it) and file descriptor 1 itself, which C code and child processes
    (vLLM's engine core and workers) write to. The JSON goes to a saved copy of the original.
    """

    def __init__(self) -> None:
        self.active = False
        self._stream: Any = None        # sys.stdout as it was
        self._saved_fd: int | None = None

    def start(self) -> None:
        if self.active:
            return
        self.active = True
        self._stream = sys.stdout
        for stream in (sys.stdout, sys.__stdout__):
            if stream is not None:
                stream.flush()
        try:
            self._saved_fd = os.dup(1)
            os.dup2(2, 1)
        except OSError:                  # no fd 1 (embedded interpreter): Python level only
            self._saved_fd = None
        sys.stdout = sys.stderr

    def stop(self) -> None:
        if not self.active:
            return
        # Flush while fd 1 still points to stderr: a logging handler bound to the original
        # sys.stdout object may hold buffered lines written during the command.
        for stream in (sys.stdout, self._stream, sys.__stdout__):
            if stream is not None:
                stream.flush()
        sys.stdout = self._stream
        if self._saved_fd is not None:
            os.dup2(self._saved_fd, 1)
            os.close(self._saved_fd)
        self.active, self._saved_fd, self._stream = False, None, None

    def write(self, text: str) -> None:
        """Write the JSON document: to the saved fd 1 when stdout was fd 1, else to the stream
        that was sys.stdout (a test's capture buffer)."""
        stream = self._stream if self.active else sys.stdout
        if self.active and self._saved_fd is not None and _fileno(stream) == 1:
            data = text.encode()
            while data:
                data = data[os.write(self._saved_fd, data):]
            return
        stream.write(text)
        stream.flush()


def _fileno(stream: Any) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None


JSON_MODE = _JsonMode()


def _json_flag(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value and not JSON_MODE.active:
        JSON_MODE.start()
        ctx.call_on_close(JSON_MODE.stop)
    return value


json_option = click.option("--json", "as_json", is_flag=True, callback=_json_flag,
                           help="Print one JSON document on stdout (logs go to stderr).")


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
        JSON_MODE.write(json.dumps(data, default=_default, indent=2) + "\n")
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
