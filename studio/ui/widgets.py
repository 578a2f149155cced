"""Reusable bits of page layout: chat bubbles, dataset/version pickers, a page header.

The dataset/version pickers follow the URL (`?dataset=X&version=vN`), so a copied link opens
the same view, and a step that makes a new version selects it (`select_version`): the
picker's state can only be set before the widget is drawn, so the choice waits in
`session_state` for the next run.
"""

from __future__ import annotations

import streamlit as st

from studio.ui.data import messages_of, versions_of
from studio.ui.session import store

ROLE_AVATARS = {"system": ":material/settings:", "user": ":material/person:",
                "assistant": ":material/smart_toy:"}
PENDING = "{key}:pending"  # a version to select on the next run of picker `key`
FLASH = "flash:{key}"  # a message to show once after the rerun that selects a new version


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
    """Versions newest first. A pending choice (`select_version`) wins; a stale one (another
    dataset's version) is dropped so the newest is shown."""
    versions = [v["version"] for v in versions_of(store(), dataset)]
    if not versions:
        return None
    pending = st.session_state.pop(PENDING.format(key=key), None)
    if pending in versions:
        st.session_state[key] = pending
    elif st.session_state.get(key) not in versions:
        st.session_state.pop(key, None)
    return st.selectbox(label, versions, key=key,
                        help="Versions are immutable snapshots; the newest is listed first.")


def select_version(version_key: str, ref: str, message: str | None = None,
                   dataset_key: str | None = None) -> None:
    """Make the pickers show `ref` (NAME@VERSION) from the next run on, with `message` shown
    once; call `st.rerun()` after it (or let the page rerun)."""
    dataset, _, version = ref.partition("@")
    st.session_state[PENDING.format(key=version_key)] = version
    if dataset_key:
        st.session_state[PENDING.format(key=dataset_key)] = dataset
    if message:
        st.session_state[FLASH.format(key=version_key)] = message


def flash(version_key: str) -> None:
    """The message `select_version` left for this run, as a success box."""
    message = st.session_state.pop(FLASH.format(key=version_key), None)
    if message:
        st.success(message, icon=":material/check_circle:")


def linked_ref_pickers(names: list[str], dataset_key: str, version_key: str,
                       columns: tuple) -> tuple[str, str | None]:
    """Dataset and version pickers in two columns, kept in the URL's `dataset` and `version`.

    A link's values are taken when the session opens the page (the pickers have no state yet);
    from then on the pickers write the URL, so it always reproduces the view."""
    fresh = dataset_key not in st.session_state
    wanted = st.query_params.get("dataset")
    pending = st.session_state.pop(PENDING.format(key=dataset_key), None)
    if pending in names:
        st.session_state[dataset_key] = pending
    elif fresh and wanted in names:
        st.session_state[dataset_key] = wanted
        if st.query_params.get("version"):
            st.session_state.setdefault(PENDING.format(key=version_key),
                                        st.query_params.get("version"))
    dataset = columns[0].selectbox("Dataset", names, key=dataset_key,
                                   help="Datasets imported into this workspace.")
    with columns[1]:
        version = version_picker(dataset, key=version_key)
    st.query_params["dataset"] = dataset
    if version:
        st.query_params["version"] = version
    return dataset, version
