"""Reusable bits of page layout: chat bubbles, dataset/version pickers, a page header."""

from __future__ import annotations

import streamlit as st

from studio.ui.data import messages_of, versions_of
from studio.ui.session import store

ROLE_AVATARS = {"system": ":material/settings:", "user": ":material/person:",
                "assistant": ":material/smart_toy:"}


def header(title: str, caption: str) -> None:
    st.title(title)
    st.caption(caption)


def chat_bubbles(row: dict) -> None:
    """Show a conversation the way a chat UI would, one bubble per turn."""
    for msg in messages_of(row):
        role = msg.get("role", "user")
        with st.chat_message("assistant" if role == "assistant" else "user",
                             avatar=ROLE_AVATARS.get(role)):
            if role == "system":
                st.caption("system prompt")
            st.text(msg.get("content") or "")


def dataset_picker(names: list[str], key: str, label: str = "Dataset") -> str | None:
    if not names:
        return None
    return st.selectbox(label, names, key=key, help="Datasets imported into this workspace.")


def version_picker(dataset: str, key: str, label: str = "Version") -> str | None:
    versions = [v["version"] for v in versions_of(store(), dataset)]
    if not versions:
        return None
    return st.selectbox(label, versions, key=key,
                        help="Versions are immutable snapshots; the newest is listed first.")
