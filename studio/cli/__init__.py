"""The `studio` command: every feature of the UI, scriptable.

Conventions for every command (see `studio.cli.common`):
- `--workspace DIR` on the root group (or $STUDIO_WORKSPACE), default ./studio-workspace;
- `--json` on each command prints one JSON document to stdout and nothing else there;
- a StudioError becomes one line `error: ...` on stderr and exit code 1 (2 for usage errors);
- progress bars go to stderr.
Commands live in one module per area; heavy imports (torch, vllm) stay inside the functions.
"""

from __future__ import annotations

import sys

import click

from curation.errors import StudioError
from studio.cli.common import cli


def _register_commands() -> None:
    # Each module attaches its commands to `cli` on import.
    from studio.cli import curation_cmds, demo_cmds, eval_cmds, model_cmds, training_cmds, ui_cmds  # noqa: F401


def main(argv: list[str] | None = None) -> None:
    _register_commands()
    try:
        cli.main(args=argv, prog_name="studio", standalone_mode=False)
    except StudioError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
