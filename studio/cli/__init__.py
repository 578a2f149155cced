"""The `studio` command: every feature of the UI, scriptable.

Conventions for every command (see `studio.cli.common`):
- `--workspace DIR` on the root group or after any subcommand (or $STUDIO_WORKSPACE),
  default ./studio-workspace;
- `--json` on each command prints one JSON document to stdout and nothing else there: while it
  runs, everything else bound for stdout (fd 1 included, so child processes too) goes to stderr;
- exit codes: 0 ok, 1 user error (`error: ...` on stderr), 2 usage error, 3 regression gate
  failed, 4 internal error (traceback on stderr), 130 aborted;
- progress bars go to stderr.
Commands live in one module per area; heavy imports (torch, vllm) stay inside the functions.
"""

from __future__ import annotations

import errno
import sys
import traceback

import click

from kernel.errors import StudioError
from studio.cli.common import (
    EXIT_ABORTED,
    EXIT_INTERNAL,
    EXIT_USER_ERROR,
    JSON_MODE,
    add_workspace_option_everywhere,
    cli,
)


def _register_commands() -> None:
    # Each module attaches its commands to `cli` on import.
    import studio.cli.ablation_cmds  # noqa: F401
    import studio.cli.experiment_cmds  # noqa: F401
    import studio.cli.lineage_cmds  # noqa: F401
    import studio.cli.model_cmds  # noqa: F401
    import studio.cli.store_cmds  # noqa: F401
    import studio.cli.sweep_cmds  # noqa: F401
    from studio.cli import curation_cmds, demo_cmds, eval_cmds, training_cmds, ui_cmds  # noqa: F401

    add_workspace_option_everywhere()


# The machine's state, not a bug: one line, exit 1 (full disk, no rights, read-only disk).
_USER_OS_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS)


def main(argv: list[str] | None = None) -> None:
    _register_commands()
    try:
        cli.main(args=argv, prog_name="studio", standalone_mode=False)
    except StudioError as exc:
        _fail(f"error: {exc}", EXIT_USER_ERROR)
    except OSError as exc:
        if exc.errno not in _USER_OS_ERRORS:
            raise  # a bug: keep the traceback
        where = f" ({exc.filename})" if exc.filename else ""
        _fail(f"error: {exc.strerror or exc}{where}", EXIT_USER_ERROR)
    except (click.exceptions.Abort, KeyboardInterrupt):
        _fail("aborted", EXIT_ABORTED)
    except click.ClickException as exc:
        JSON_MODE.stop()
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        JSON_MODE.stop()
        sys.exit(exc.exit_code)
    except Exception as exc:  # a bug, not the user's input: say so and keep the traceback
        JSON_MODE.stop()
        traceback.print_exc(file=sys.stderr)
        _fail(f"internal error: {type(exc).__name__}: {exc} (this is a bug in the studio or its "
              "environment; the traceback is above)", EXIT_INTERNAL)
    finally:
        JSON_MODE.stop()


def _fail(message: str, code: int) -> None:
    JSON_MODE.stop()
    click.echo(message, err=True)
    sys.exit(code)
