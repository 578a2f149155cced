"""`studio ui`: serve the Streamlit studio for the chosen workspace.

Binds to 127.0.0.1 unless told otherwise: the studio can launch processes and read every
file in the workspace, so exposing it on a network is a choice the user makes explicitly.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from kernel.errors import StudioError
from studio.cli.common import cli, emit, get_workspace, json_option

APP = Path(__file__).resolve().parents[1] / "app.py"
PAGE_NAMES = ("datasets", "curate", "train", "evaluate", "compare")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# Passed as flags (not .streamlit/config.toml) so the look does not depend on the cwd.
THEME = {
    "theme.base": "light",
    "theme.primaryColor": "#4f46e5",
    "theme.backgroundColor": "#ffffff",
    "theme.secondaryBackgroundColor": "#f5f6fa",
    "theme.textColor": "#1f2937",
}


def streamlit_command(host: str, port: int) -> list[str]:
    """The exact `streamlit run` argv `studio ui` executes, through `studio.cli.ui_server`
    (Streamlit's own command line plus a thread that imports the pages' modules meanwhile)."""
    argv = [sys.executable, "-m", "studio.cli.ui_server", "run", str(APP),
            "--server.headless", "true", "--server.address", host, "--server.port", str(port),
            "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
            "--browser.serverAddress", host, "--client.toolbarMode", "minimal",
            # Streamlit's gc.collect(2) after every page run held the GIL ~0.3 s with the
            # libraries loaded (measured with py-spy on a Compare view), delaying the sending
            # of what the run drew; Python's own collector still runs.
            "--runner.postScriptGC", "false"]
    for key, value in THEME.items():
        argv += [f"--{key}", value]
    return argv


def studio_url(host: str, port: int, page: str | None = None) -> str:
    return f"http://{host}:{port}/" + (f"?page={page}" if page else "")


@cli.command("ui")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind. Anything but loopback exposes the studio to the network.")
@click.option("--port", default=8501, show_default=True, type=click.IntRange(1, 65535),
              help="Port to serve on.")
@click.option("--page", type=click.Choice(PAGE_NAMES), default=None,
              help="Page the printed URL opens on.")
@click.option("--dry-run", is_flag=True, help="Print the command and URL instead of serving.")
@json_option
@click.pass_context
def ui(ctx: click.Context, host: str, port: int, page: str | None, dry_run: bool,
       as_json: bool) -> None:
    """Open the studio in the browser (Streamlit, headless, on 127.0.0.1 by default)."""
    workspace = get_workspace(ctx)
    if host not in LOOPBACK:
        click.echo(f"warning: binding to {host}: anyone who can reach this address can launch "
                   "jobs and read the workspace", err=True)
    argv = streamlit_command(host, port)
    url = studio_url(host, port, page)
    info = {"url": url, "workspace": str(workspace.root), "command": argv}
    if dry_run:
        emit(info, as_json, human=f"{' '.join(argv)}\n{url}")
        return
    emit(info, as_json, human=f"Tuning Studio on {url}  (workspace {workspace.root}; Ctrl+C stops)")
    env = dict(os.environ, STUDIO_WORKSPACE=str(workspace.root))
    sys.stdout.flush()
    sys.stderr.flush()
    # Become the server rather than wrap it: signals reach streamlit directly and no orphan
    # server outlives a killed `studio ui`.
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        raise StudioError(f"could not start streamlit ({' '.join(argv)}): {exc}") from exc
