"""Where the UI finds its workspace and libraries, and how it shows their errors.

The DuckDB file is never held across reruns: every action makes a `Store` (cheap, holds no
connection) and takes a short-lived connection through it. Library functions that do not
exist yet (the libraries grow concurrently) are looked up by name so a page can say
"not available yet" instead of crashing.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st

from curation.errors import StudioError
from curation.store import Store
from curation.workspace import resolve_workspace_path

WORKSPACE_KEY = "studio_workspace"


def workspace_path() -> Path:
    """The workspace chosen in the sidebar picker, else $STUDIO_WORKSPACE, else the default."""
    chosen = st.session_state.get(WORKSPACE_KEY)
    return resolve_workspace_path(chosen or os.environ.get("STUDIO_WORKSPACE"))


def set_workspace(path: str) -> None:
    """Switch this browser session to another workspace folder (created if missing)."""
    if not path.strip():
        raise StudioError("workspace path is empty")
    st.session_state[WORKSPACE_KEY] = str(resolve_workspace_path(path.strip()))


def store() -> Store:
    """A fresh Store for one action; it opens connections only inside `connect()` blocks."""
    return Store(workspace_path())


def lib(module: str, attr: str) -> Callable[..., Any] | None:
    """`module.attr` if that library function exists yet, else None."""
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None
    return getattr(mod, attr, None)


def not_available(what: str) -> None:
    """A calm placeholder for a feature whose library function has not landed yet."""
    st.info(f"{what} is not available yet in this build of the studio.", icon=":material/construction:")


def call(action: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[bool, Any]:
    """Run a library call; on StudioError show the message and return (False, None)."""
    try:
        return True, fn(*args, **kwargs)
    except StudioError as exc:
        st.error(f"{action} failed: {exc}", icon=":material/error:")
        return False, None


def lib_first(*candidates: tuple[str, str]) -> Callable[..., Any] | None:
    """The first of several (module, attr) names that exists: for APIs whose home may move."""
    for module, attr in candidates:
        fn = lib(module, attr)
        if fn is not None:
            return fn
    return None


def field(obj: Any, name: str, default: Any = None) -> Any:
    """Read `name` from a dict or a dataclass-like result alike."""
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)
