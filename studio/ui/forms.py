"""Build a form from a config dataclass: one widget per field, default and help from the field.

The training config documents itself (each field's `metadata["help"]`), so the form explains
inline what a user would otherwise read docs for, and stays in step when fields are added.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable
from typing import Any

import streamlit as st

from kernel.errors import StudioError

MISSING = dataclasses.MISSING


def default_of(f: dataclasses.Field) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def _base_type(tp: Any) -> tuple[Any, bool]:
    """(the type without Optional, whether None is allowed)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return (args[0] if len(args) == 1 else str), True
    return tp, False


def field_widget(f: dataclasses.Field, tp: Any, key: str, override: Any = MISSING,
                 choices: dict[str, list] | None = None,
                 labels: dict[str, Callable[[Any], str]] | None = None) -> Any:
    """One input widget for a dataclass field; returns its raw value. `labels` shows a
    choice field's values by name (a model folder as its name, not its path)."""
    base, optional = _base_type(tp)
    value = default_of(f) if override is MISSING else override
    label = f.name.replace("_", " ")
    help_text = f.metadata.get("help") if f.metadata else None
    if choices and f.name in choices and choices[f.name]:
        options = list(choices[f.name])
        if value not in options and value not in (None, ""):
            options.insert(0, value)
        return st.selectbox(label, options, index=options.index(value) if value in options else 0,
                            help=help_text, key=key, accept_new_options=base is str,
                            format_func=(labels or {}).get(f.name, str))
    if base is bool:
        return st.checkbox(label, value=bool(value), help=help_text, key=key)
    if base is int and not optional:
        return st.number_input(label, value=int(value or 0), step=1, help=help_text, key=key)
    if base is float and not optional:
        return st.number_input(label, value=float(value or 0.0), format="%g", help=help_text,
                               key=key)
    if typing.get_origin(base) in (list, tuple) or base in (list, tuple):
        text = ", ".join(str(v) for v in (value or []))
        return st.text_input(label, value=text, help=help_text, key=key)
    if typing.get_origin(base) is dict or base is dict:
        return st.text_input(label, value=json.dumps(value or {}), help=help_text, key=key)
    text = "" if value is None else str(value)
    return st.text_input(label, value=text, help=(help_text or "") + (" (empty = none)" if optional else ""),
                         key=key)


def convert(f: dataclasses.Field, tp: Any, raw: Any) -> Any:
    """Turn a widget value back into the field's type; StudioError names the field."""
    base, optional = _base_type(tp)
    if isinstance(raw, str):
        raw = raw.strip()
        if raw == "" and optional:
            return None
    try:
        if typing.get_origin(base) in (list, tuple) or base in (list, tuple):
            items = [s.strip() for s in str(raw).split(",") if s.strip()]
            inner = typing.get_args(base)
            if inner and inner[0] in (int, float):
                items = [inner[0](s) for s in items]
            return tuple(items) if (typing.get_origin(base) or base) is tuple else items
        if typing.get_origin(base) is dict or base is dict:
            return json.loads(raw) if isinstance(raw, str) else raw
        if base is int:
            return int(raw)
        if base is float:
            return float(raw)
    except (ValueError, json.JSONDecodeError) as exc:
        raise StudioError(f"field {f.name}: {raw!r} is not a valid {getattr(base, '__name__', base)}"
                          f" ({exc})") from exc
    return raw


def dataclass_form(cls: type, key: str, overrides: dict[str, Any] | None = None,
                   choices: dict[str, list] | None = None, columns: int = 3,
                   skip: tuple[str, ...] = (), only: tuple[str, ...] | None = None,
                   labels: dict[str, Callable[[Any], str]] | None = None) -> dict[str, Any]:
    """Widgets for the init fields of `cls` (all, or `only` these, minus `skip`) in columns;
    returns name -> raw value."""
    hints = typing.get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init and f.name not in skip
              and (only is None or f.name in only)]
    if only is not None:
        fields.sort(key=lambda f: only.index(f.name))
    cols = st.columns(columns)
    raw: dict[str, Any] = {}
    for i, f in enumerate(fields):
        with cols[i % columns]:
            raw[f.name] = field_widget(f, hints.get(f.name, str), f"{key}.{f.name}",
                                       (overrides or {}).get(f.name, MISSING), choices, labels)
    return raw


def build_config(cls: type, raw: dict[str, Any]):
    """Instantiate `cls` from form values; its __post_init__ validates (StudioError)."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {name: convert(fields[name], hints.get(name, str), value)
              for name, value in raw.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise StudioError(f"invalid training config: {exc}") from exc
