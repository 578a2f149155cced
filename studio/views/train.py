"""Train page: launch LoRA runs from a form, watch them live, cancel, resume, merge, overlay runs.

The Runs tab is a fragment that re-runs itself every 2 s while a run is queued or running and
re-runs the whole page once the set of active runs changes (a run ended or started), so the
table, the sidebar count and the polling all follow the jobs without a reload. `?run=ID` selects
a run (the URL follows the selection, so a link reproduces the view).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from kernel.jobs import cancel, resume
from studio.ui import charts, runs
from studio.ui.data import dataset_overview, versions_of
from studio.ui.forms import build_config, dataclass_form
from studio.ui.session import call, store, workspace_path
from studio.ui.status import list_runs
from studio.ui.tabs import open_tab, switchable_tabs
from studio.ui.text import literal
from studio.ui.train_form import ESSENTIALS, base_model_labels, field_choices
from studio.ui.widgets import header
from training.config import TrainConfig
from training.listing import base_model_choices, checkpoint_ids
from training.merge import export_model
from training.start_run import launch_training

header("Train", "Fine-tune a LoRA adapter on a dataset version. Runs are durable jobs: closing "
       "the tab or reloading never stops them, and every tab sees the same runs.")

# Material icons (markdown) rather than emoji: headless/server fonts often lack emoji glyphs.
STATE_ICONS = {"queued": ":gray[:material/schedule:]", "running": ":blue[:material/sync:]",
               "completed": ":green[:material/check_circle:]", "failed": ":red[:material/error:]",
               "cancelled": ":orange[:material/cancel:]"}
RUNS_TAB, NEW_TAB = ":material/monitoring: Runs", ":material/add_circle: New run"
POLL = "2s"


def select_run(run_id: str) -> None:
    """Chart this run and open the Runs tab (before those widgets exist in this script run)."""
    st.session_state["train_chosen"] = [run_id]
    open_tab("train_tab", RUNS_TAB)
    st.session_state["train_link"] = run_id
    st.query_params["run"] = run_id


def apply_focus(ids: list[str]) -> None:
    """A run launched on the last script run, or named by `?run=ID`, becomes the selected one."""
    launched = st.session_state.pop("train_launched", None)
    if launched in ids:
        select_run(launched)
        return
    link = st.query_params.get("run")
    if link and link != st.session_state.get("train_link"):
        st.session_state["train_link"] = link
        if link in ids:
            select_run(link)
        else:
            st.warning(f"The link names run {literal(link)}, which is not in this workspace.",
                       icon=":material/link_off:")


def launch_form() -> None:
    cls = TrainConfig
    datasets = [ref for d in dataset_overview(store())
                for ref in [d["name"]] + [f"{d['name']}@{v['version']}"
                                          for v in versions_of(store(), d["name"])]]
    models = base_model_choices(store())
    st.caption("Defaults suit the offline tiny model; hover a field's ⓘ for what it does.")
    choices = field_choices(datasets, models)
    labels = {"base_model": base_model_labels(models)}
    with st.form("train_form"):
        raw = dataclass_form(cls, key="train", choices=choices, only=ESSENTIALS, labels=labels)
        with st.expander("Advanced: LoRA targets, schedule, evaluation, checkpoints, precision"):
            raw.update(dataclass_form(cls, key="train", choices=choices, skip=ESSENTIALS,
                                      labels=labels))
        submitted = st.form_submit_button("Launch run", type="primary",
                                          icon=":material/rocket_launch:")
    if submitted:
        ok, config = call("Config", build_config, cls, raw)
        if ok:
            ok, rid = call("Launch", launch_training, store(), config)
            if ok:
                rid = str(rid)
                st.session_state["train_launched"] = rid  # selected on the next run
                st.session_state["train_focus"] = rid  # the last run launched here
                st.session_state["train_flash"] = (
                    f"Launched run {literal(runs.run_label({'id': rid, 'name': config.name}))}.",
                    ":material/rocket_launch:")
                st.rerun()


def summary(all_runs: list[dict]) -> None:
    states = [r["state"] for r in all_runs]
    m = st.columns(4)
    m[0].metric("Runs", len(all_runs))
    m[1].metric("Running", sum(s in runs.ACTIVE for s in states))
    m[2].metric("Completed", states.count("completed"))
    m[3].metric("Failed / cancelled", states.count("failed") + states.count("cancelled"))


def run_table(all_runs: list[dict]) -> None:
    frame = pd.DataFrame([{"state": r["state"], "run": runs.run_label(r),
                           "progress": runs.progress(r) or 0.0,
                           "created": r.get("created_at"), "finished": r.get("finished_at"),
                           "error": (r.get("error") or "").splitlines()[0] if r.get("error")
                           else ""} for r in all_runs])
    st.dataframe(frame, hide_index=True, width="stretch",
                 column_config={"progress": st.column_config.ProgressColumn(
                                    format="percent", min_value=0.0, max_value=1.0),
                                "created": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss"),
                                "finished": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss"),
                                "error": st.column_config.TextColumn(width="large")})


def link_selection() -> None:
    """Keep `?run=` on the first charted run, so the URL reproduces the view."""
    chosen = st.session_state.get("train_chosen") or []
    if chosen:
        st.query_params["run"] = chosen[0]
        st.session_state["train_link"] = chosen[0]
    elif "run" in st.query_params:
        del st.query_params["run"]


def active_ids(all_runs: list[dict]) -> set[str]:
    return {r["id"] for r in all_runs if r["state"] in runs.ACTIVE}


def runs_panel(first: list[dict]) -> None:
    """Summary, table, charts and controls; polls while a run is active (see module doc)."""
    was_active = active_ids(first)

    @st.fragment(run_every=POLL if was_active else None)
    def panel() -> None:
        current = st.session_state.pop("train_runs_now", None)
        if current is None:  # a fragment re-run: read the jobs again
            current = list_runs(kind="train")
        if active_ids(current) != was_active:
            st.rerun(scope="app")  # a run ended or started: refresh the page and the sidebar
        summary(current)
        run_table(current)
        live_view(current)

    st.session_state["train_runs_now"] = first
    panel()


def live_view(all_runs: list[dict]) -> None:
    by_id = {r["id"]: r for r in all_runs}
    chosen = [i for i in st.session_state.get("train_chosen") or [] if i in by_id]
    st.session_state["train_chosen"] = chosen or list(by_id)[:1]
    picked_ids = st.multiselect("Runs to chart", list(by_id), key="train_chosen",
                                format_func=lambda i: runs.run_label(by_id[i]),
                                on_change=link_selection,
                                help="Pick several to overlay their curves on the same charts.")
    picked = [by_id[i] for i in picked_ids]
    frame = runs.metrics_frame(picked)
    if frame.empty:
        st.caption("No metrics logged yet: curves appear after the first logging step.")
    else:
        shown = [m for m in dict.fromkeys(runs.CHART_METRICS.values())
                 if m in set(frame["metric"])]
        cols = st.columns(2)
        for i, metric in enumerate(shown):
            cols[i % 2].altair_chart(charts.metric_lines(frame, metric),
                                     width="stretch", height=240)
    ckpts = checkpoint_ids(store()) if picked else []
    for run in picked:
        run_controls(run, [c for c in ckpts if c.startswith(f"{run['id']}/")])


def run_controls(run: dict, ckpts: list[str]) -> None:
    frac = runs.progress(run)
    label = (f"{STATE_ICONS.get(run['state'], '')} **{literal(runs.run_label(run))}** "
             f"— {run['state']}")
    with st.container(border=True):
        top, b1, b2 = st.columns([6, 1, 1])
        top.markdown(label)
        if frac is not None:
            top.progress(frac, text=runs.progress_text(run))
        if run["state"] in runs.ACTIVE and b1.button("Cancel", key=f"cancel-{run['id']}",
                                                     icon=":material/stop_circle:"):
            act("Cancel", cancel, run["id"])
        if run["state"] in ("failed", "cancelled") and b2.button(
                "Resume", key=f"resume-{run['id']}", icon=":material/play_circle:"):
            act("Resume", resume, run["id"])
        if run.get("error"):
            st.error(literal(run["error"]))
        if ckpts:
            merge_form(run, ckpts)
        tail = runs.log_tail(run)
        with st.expander("Log tail", expanded=run["state"] in runs.ACTIVE):
            st.code(tail or "(no log yet)", language=None)


def merge_form(run: dict, ckpts: list[str]) -> None:
    """Merge a checkpoint into its base model: a standalone model folder with a model card."""
    with st.expander("Merge a checkpoint into a standalone model"), \
            st.form(f"merge-{run['id']}", border=False):
        ckpt = st.selectbox("Checkpoint", ckpts, index=len(ckpts) - 1,
                            format_func=lambda c: runs.checkpoint_label(c, {run["id"]: run}))
        folder = st.text_input("Output folder", placeholder="empty = a new folder in exports/",
                               help="A new or empty folder. It receives the merged weights, the "
                                    "tokenizer and a model card (data version, hashes, config, "
                                    "eval results).")
        if st.form_submit_button("Merge", icon=":material/merge:"):
            out = folder.strip() or str(runs.merge_folder(workspace_path(), run, ckpt))
            with st.spinner("Merging the adapter into the base model…"):
                ok, result = call("Merge", export_model, store(), ckpt, out)
            if ok:  # shown at the top of the page: a re-run can fold this expander away
                st.session_state["train_flash"] = (
                    f"Merged {literal(runs.checkpoint_label(ckpt, {run['id']: run}))} "
                    f"into {literal(result['path'])} (with a model card).",
                    ":material/check_circle:")
                st.rerun(scope="app")


def act(action: str, fn, run_id: str) -> None:
    ok, _ = call(action, fn, store(), run_id)
    if ok:
        st.rerun(scope="app")


if "train_flash" in st.session_state:  # (message, icon) of what the last run of the page did
    message, icon = st.session_state.pop("train_flash")
    st.success(message, icon=icon)
all_runs = list_runs(kind="train")
apply_focus([r["id"] for r in all_runs])
tab_runs, tab_new = switchable_tabs([RUNS_TAB, NEW_TAB], "train_tab")
with tab_new:
    launch_form()
with tab_runs:
    if all_runs:
        runs_panel(all_runs)
    else:
        st.info("No training runs yet: start one in the **New run** tab.", icon=":material/info:")
