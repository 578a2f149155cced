"""Tabs a page can switch to from code (a launched job opens the tab that shows it).

Why not `st.session_state[key] = label`: Streamlit 1.67 shows the tab but the browser keeps
reporting the tab the user clicked last, so the next rerun (e.g. a fragment's) switches back.
A new widget key with the wanted tab as `default` makes a fresh widget that starts there.
"""

from __future__ import annotations

import streamlit as st


def switchable_tabs(labels: list[str], key: str) -> list:
    """`st.tabs` whose open tab `open_tab(key, label)` can set for the next script run."""
    generation = st.session_state.get(f"{key}.generation", 0)
    default = st.session_state.get(f"{key}.open", labels[0])
    return st.tabs(labels, default=default if default in labels else labels[0],
                   key=f"{key}.{generation}", on_change="rerun")


def open_tab(key: str, label: str) -> None:
    """Open `label` on the next script run (call before or instead of rendering the tabs)."""
    st.session_state[f"{key}.open"] = label
    st.session_state[f"{key}.generation"] = st.session_state.get(f"{key}.generation", 0) + 1

