"""Click options generated from a config dataclass (TRL's `TrlParser` idea, for click).

One option per init field: `--field-name` (plus `metadata["cli_aliases"]`), its type and help
from the field, default None so an unset flag never overrides the YAML file; booleans get
`--x/--no-x`. Adding a field to `TrainConfig` adds its flag, as it adds its UI form widget.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Any

import click


def _base_type(tp: Any) -> Any:
    """The field's type without Optional."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else str
    return tp


def _default_text(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return ""
    if isinstance(value, list):
        value = ",".join(map(str, value))
    return f" [default: {value!r}]" if value != "" else ""


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def dataclass_options(cls: type) -> Callable[[Callable], Callable]:
    """Decorate a click command with one option per init field of `cls`."""
    hints = typing.get_type_hints(cls)

    def decorate(command: Callable) -> Callable:
        for f in reversed([f for f in dataclasses.fields(cls) if f.init]):
            base = _base_type(hints[f.name])
            help_text = (f.metadata.get("help") or "") + _default_text(f)
            if base is bool:
                flag = flag_name(f.name)
                option = click.option(f"{flag}/--no-{flag[2:]}", f.name, default=None,
                                      help=help_text)
            else:
                names = [flag_name(f.name), *(flag_name(a) for a in f.metadata.get("cli_aliases", ()))]
                kind = base if base in (int, float) else str
                if typing.get_origin(base) is list or base is list:
                    help_text = "Comma-separated. " + help_text
                option = click.option(*names, f.name, type=kind, default=None, help=help_text)
            command = option(command)
        return command

    return decorate


def field_values(cls: type, params: dict[str, Any]) -> dict[str, Any]:
    """The fields of `cls` the user set on the command line (unset flags are None)."""
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    return {k: v for k, v in params.items() if k in names and v is not None}
