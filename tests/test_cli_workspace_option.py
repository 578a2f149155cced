"""`--workspace DIR` works where users type it: before the subcommand (`studio -w DIR ui`) and
after it (`studio ui --workspace DIR`), for every command of the app (listed from click)."""

from __future__ import annotations

import json

import pytest

from studio.cli import _register_commands, main
from studio.cli.common import iter_commands


def all_commands() -> list[tuple[str, ...]]:
    _register_commands()
    return [path for path, _ in iter_commands() if path]


@pytest.mark.parametrize("path", all_commands(), ids=" ".join)
def test_every_command_accepts_workspace_after_it(path, tmp_path, capsys):
    """Before this option existed here, click refused it: 'No such option: --workspace' (2)."""
    try:
        main([*path, "--workspace", str(tmp_path / "ws"), "--help"])
    except SystemExit as exc:
        assert exc.code in (0, None), capsys.readouterr().err
    assert "--workspace" in capsys.readouterr().out


def test_workspace_after_the_subcommand_is_the_one_used(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    main(["ui", "--workspace", str(a), "--dry-run", "--json"])
    assert json.loads(capsys.readouterr().out)["workspace"] == str(a.resolve())
    # the one typed after the subcommand wins over the root's (it is the more specific)
    main(["-w", str(b), "ui", "-w", str(a), "--dry-run", "--json"])
    assert json.loads(capsys.readouterr().out)["workspace"] == str(a.resolve())
    main(["-w", str(b), "datasets", "--json"])
    capsys.readouterr()
    assert (b / "studio.duckdb").exists()
    main(["datasets", "--workspace", str(a), "--json"])
    assert json.loads(capsys.readouterr().out) == [] and (a / "studio.duckdb").exists()
