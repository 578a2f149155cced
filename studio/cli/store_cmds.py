"""`studio store serve` / `studio store status`: the workspace's store process by hand.

`studio ui` starts the store process itself; start it here when many CLI jobs share a
workspace without the UI (a long import then never makes a reader wait; see kernel.store_server).
"""

from __future__ import annotations

import click

from kernel import store_client, store_wire
from kernel.errors import StudioError
from studio.cli.common import cli, emit, get_workspace, json_option


@cli.group("store")
def store_group() -> None:
    """The workspace's store process (one process holding the database for everyone)."""


@store_group.command("serve")
@click.option("--idle-exit", type=click.FloatRange(min=1), default=None,
              help="Stop after this many seconds without a client (default: run until Ctrl+C).")
@click.pass_context
def serve_cmd(ctx: click.Context, idle_exit: float | None) -> None:
    """Hold the workspace's database in this process and serve every studio command and page
    of this workspace until Ctrl+C (or --idle-exit). Readers then never wait for a write."""
    from kernel.store_server import serve

    workspace = get_workspace(ctx)
    code = serve(workspace.root, idle_exit_s=idle_exit,
                 ready=lambda p: click.echo(f"store process on {p} for {workspace.root} "
                                            "(Ctrl+C stops)", err=True))
    if code == 3:
        raise StudioError(f"workspace {workspace.root} has a store process already")


@store_group.command("status")
@json_option
@click.pass_context
def status_cmd(ctx: click.Context, as_json: bool) -> None:
    """Whether the workspace's store process runs (else commands take the file lock)."""
    workspace = get_workspace(ctx)
    running = store_client.server_running(workspace.root)
    pid = store_client.server_pid(workspace.root) if running else None
    info = {"workspace": str(workspace.root), "running": running, "pid": pid,
            "socket": str(store_wire.socket_path(workspace.root))}
    emit(info, as_json, human=(f"store process {pid} serves {workspace.root} on {info['socket']}"
                               if running else f"no store process for {workspace.root}: "
                               "commands take the file lock"))
