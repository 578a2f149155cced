"""CLI commands (placeholder module: commands are attached to `cli` here)."""

from studio.cli.common import cli  # noqa: F401
