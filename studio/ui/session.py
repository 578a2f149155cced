"""This browser session's workspace, and how pages show a library's errors.

The DuckDB file is never held across reruns: every action makes a `Store` (cheap, holds no
connection) and takes a short-lived connection through it. Pages import the libraries
directly; this module only knows which workspace the session looks at.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st

from kernel.errors import StudioError
from kernel.store import Store
from kernel.workspace import resolve_workspace_path
from studio.ui.text import literal

WORKSPACE_KEY = "studio_workspace"


def workspace_path() -> Path:
    """The workspace chosen in the sidebar picker, else $STUDIO_WORKSPACE, else the default."""
    chosen = st.session_state.get(WORKSPACE_KEY)
    return resolve_workspace_path(chosen or os.environ.get("STUDIO_WORKSPACE"))


def set_workspace(path: str, create: bool = False) -> None:
    """Switch this browser session to another workspace folder. A folder that does not exist
    is refused unless `create` (a typo must not silently make an empty workspace)."""
    if not path.strip():
        raise StudioError("workspace path is empty")
    target = resolve_workspace_path(path.strip())
    if target.exists() and not target.is_dir():
        raise StudioError(f"workspace {target} is a file, not a folder")
    if not target.exists() and not create:
        raise StudioError(f"workspace folder {target} does not exist; tick "
                          "\"Create it\" to start a new workspace there")
    st.session_state[WORKSPACE_KEY] = str(target)


def store() -> Store:
    """A fresh Store for one action; it opens connections only inside `connect()` blocks."""
    return Store(workspace_path())


def call(action: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[bool, Any]:
    """Run a library call; on StudioError show the message and return (False, None)."""
    try:
        return True, fn(*args, **kwargs)
    except StudioError as exc:
        st.error(f"{action} failed: {literal(exc)}", icon=":material/error:")
        return False, None
