"""Train page: launch LoRA runs from a form, watch them live, cancel, resume, overlay runs."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from studio.ui import charts, runs
from studio.ui.data import dataset_overview, versions_of
from studio.ui.forms import build_config, dataclass_form
from studio.ui.session import call, store
from studio.ui.status import list_runs
from studio.ui.text import literal
from studio.ui.train_form import ESSENTIALS, field_choices
from studio.ui.widgets import header
from training.config import TrainConfig
from training.jobs import cancel, resume
from training.launcher import launch_training
from training.listing import base_model_choices

header("Train", "Fine-tune a LoRA adapter on a dataset version. Runs are durable jobs: closing "
       "the tab or reloading never stops them, and every tab sees the same runs.")

# Material icons (markdown) rather than emoji: headless/server fonts often lack emoji glyphs.
STATE_ICONS = {"queued": ":gray[:material/schedule:]", "running": ":blue[:material/sync:]",
               "completed": ":green[:material/check_circle:]", "failed": ":red[:material/error:]",
               "cancelled": ":orange[:material/cancel:]"}


def launch_form() -> None:
    cls = TrainConfig
    datasets = [ref for d in dataset_overview(store())
                for ref in [d["name"]] + [f"{d['name']}@{v['version']}"
                                          for v in versions_of(store(), d["name"])]]
    models = base_model_choices(store())
    st.caption("Defaults suit the offline tiny model; hover a field's ⓘ for what it does.")
    choices = field_choices(datasets, models)
    with st.form("train_form"):
        raw = dataclass_form(cls, key="train", choices=choices, only=ESSENTIALS)
        with st.expander("Advanced: LoRA targets, schedule, evaluation, checkpoints, precision"):
            raw.update(dataclass_form(cls, key="train", choices=choices, skip=ESSENTIALS))
        submitted = st.form_submit_button("Launch run", type="primary",
                                          icon=":material/rocket_launch:")
    if submitted:
        ok, config = call("Config", build_config, cls, raw)
        if ok:
            ok, rid = call("Launch", launch_training, store(), config)
            if ok:
                st.session_state["train_focus"] = str(rid)
                st.session_state["train_flash"] = f"Launched run `{rid}`."
                st.rerun()


def run_table(all_runs: list[dict]) -> None:
    frame = pd.DataFrame([{"state": r["state"], "id": r["id"], "name": r.get("name") or "",
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


def live_view(all_runs: list[dict]) -> None:
    """Charts, progress and log of the chosen runs; polls every 2 s only while one is active."""
    ids = [r["id"] for r in all_runs]
    focus = st.session_state.get("train_focus")
    default = [focus] if focus in ids else ids[:1]
    chosen = st.multiselect("Runs to chart", ids, default=default, key="train_chosen",
                            help="Pick several to overlay their curves on the same charts.")
    active = any(r["state"] in runs.ACTIVE for r in all_runs if r["id"] in chosen)

    @st.fragment(run_every="2s" if active else None)
    def live() -> None:
        current = {r["id"]: r for r in list_runs(kind="train")}
        picked = [current[i] for i in chosen if i in current]
        if active and not any(r["state"] in runs.ACTIVE for r in picked):
            st.rerun(scope="app")  # the last job ended: stop polling, refresh the table
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
        for run in picked:
            run_controls(run)

    live()


def run_controls(run: dict) -> None:
    frac = runs.progress(run)
    label = (f"{STATE_ICONS.get(run['state'], '')} **{literal(run.get('name') or run['id'])}** "
             f"— {run['state']}")
    with st.container(border=True):
        top, b1, b2 = st.columns([6, 1, 1])
        top.markdown(label)
        if frac is not None:
            top.progress(frac, text=f"{frac:.0%}")
        if run["state"] in runs.ACTIVE and b1.button("Cancel", key=f"cancel-{run['id']}",
                                                     icon=":material/stop_circle:"):
            act("Cancel", cancel, run["id"])
        if run["state"] in ("failed", "cancelled") and b2.button(
                "Resume", key=f"resume-{run['id']}", icon=":material/play_circle:"):
            act("Resume", resume, run["id"])
        if run.get("error"):
            st.error(literal(run["error"]))
        tail = runs.log_tail(run)
        with st.expander("Log tail", expanded=run["state"] in runs.ACTIVE):
            st.code(tail or "(no log yet)", language=None)


def act(action: str, fn, run_id: str) -> None:
    ok, _ = call(action, fn, store(), run_id)
    if ok:
        st.rerun(scope="app")


if "train_flash" in st.session_state:
    st.success(st.session_state.pop("train_flash"), icon=":material/rocket_launch:")
all_runs = list_runs(kind="train")
states = [r["state"] for r in all_runs]
m = st.columns(4)
m[0].metric("Runs", len(all_runs))
m[1].metric("Running", sum(s in runs.ACTIVE for s in states))
m[2].metric("Completed", states.count("completed"))
m[3].metric("Failed / cancelled", states.count("failed") + states.count("cancelled"))
tab_runs, tab_new = st.tabs([":material/monitoring: Runs", ":material/add_circle: New run"])
with tab_new:
    launch_form()
with tab_runs:
    if all_runs:
        run_table(all_runs)
        live_view(all_runs)
    else:
        st.info("No training runs yet: start one in the **New run** tab.", icon=":material/info:")
