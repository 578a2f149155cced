"""The sidebar status bar: which workspace, how many jobs run, whether a GPU is present."""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from evals.jobs import ingest_finished
from kernel import jobs
from kernel.errors import StudioError
from studio.ui.runs import ACTIVE
from studio.ui.session import set_workspace, store, workspace_path
from studio.ui.text import literal


@st.cache_resource(show_spinner=False)
def gpu_name() -> str | None:
    """The first NVIDIA GPU's model as the driver lists it, or None. Read from the device files
    the job runner counts GPUs by (`/dev/nvidiaN`, `$CUDA_VISIBLE_DEVICES`), not by importing
    torch: that import was ~2 s of a fresh server's first page view (issue 11)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and not visible.strip():
        return None
    try:
        if not any(d.startswith("nvidia") and d[6:].isdigit() for d in os.listdir("/dev")):
            return None
    except OSError:
        return None
    for info in sorted(Path("/proc/driver/nvidia/gpus").glob("*/information")):
        for line in info.read_text(errors="replace").splitlines():
            if line.startswith("Model:"):
                return line.split(":", 1)[1].strip()
    return "NVIDIA GPU"


def list_runs(kind: str | None = None, do_refresh: bool = True) -> list[dict]:
    """Jobs from the store after ingesting run folders (so reloads and tabs agree)."""
    return jobs.list_runs(store(), kind=kind, do_refresh=do_refresh)


def running_count() -> int:
    """Jobs still running; finished eval jobs get their results stored on the way (any page)."""
    runs = list_runs()
    ingest_finished(store(), runs)
    return sum(1 for r in runs if r.get("state") in ACTIVE)


def sidebar() -> None:
    """Render the workspace picker and status metrics at the top of the sidebar."""
    with st.sidebar:
        st.markdown("### :material/tune: Tuning Studio")
        st.caption("WORKSPACE")
        with st.form("workspace_picker", border=False):
            path = st.text_input("Workspace folder", value=str(workspace_path()),
                                 label_visibility="collapsed",
                                 help="Folder holding studio.duckdb and runs/. Type another path "
                                      "and press Switch.")
            create = st.checkbox("Create it if missing", key="workspace_create",
                                 help="Without it, a folder that does not exist is refused.")
            if st.form_submit_button("Switch workspace", width="stretch"):
                try:
                    set_workspace(path, create=create)  # the status and the page below use it
                except StudioError as exc:
                    st.error(literal(exc))
        left, right = st.columns(2)
        with left:
            jobs_metric()
        gpu = gpu_name()
        right.metric("GPU", "yes" if gpu else "no", help=gpu or "No CUDA device: CPU only.")


def jobs_metric() -> None:
    """The running-jobs count; re-reads itself every 2 s while jobs run, and re-runs the page
    when the count changes (a job ended), so no page shows a finished job as running."""
    try:
        first = running_count()
    except StudioError as exc:
        st.warning(literal(exc))
        st.metric("Running jobs", "?", help=JOBS_HELP)
        return

    @st.fragment(run_every="2s" if first else None)
    def count() -> None:
        now = st.session_state.pop("sidebar_running_now", None)
        if now is None:  # a fragment re-run
            try:
                now = running_count()
            except StudioError as exc:
                st.warning(literal(exc))
                now = first
        if now != first:
            st.rerun(scope="app")
        st.metric("Running jobs", now, help=JOBS_HELP)

    st.session_state["sidebar_running_now"] = first
    count()


JOBS_HELP = "Train and eval jobs in state queued or running."
