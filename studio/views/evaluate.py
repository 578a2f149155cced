"""Evaluate page: pick a suite and checkpoints, launch an eval job, watch it, see stored results.

The Jobs tab is a fragment that re-runs itself every 2 s while an eval job is queued or running
(per-checkpoint progress, ETA, cancel, log) and re-runs the page when a job ends (its results
are stored on the way). `?checkpoint=ID` preselects a checkpoint (next to its base model): the
"evaluate this checkpoint" link other pages give.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from evals.backends import BACKENDS
from evals.jobs import ingest_finished, launch_eval
from evals.results import latest_results
from evals.suites import list_suites
from kernel.jobs import cancel
from kernel.status import read_status
from studio.ui import runs
from studio.ui.session import call, store
from studio.ui.status import list_runs
from studio.ui.tabs import open_tab, switchable_tabs
from studio.ui.text import literal
from studio.ui.widgets import header
from training.checkpoints import base_checkpoint_id, resolve
from training.listing import checkpoint_ids

header("Evaluate", "Generate answers to held-out suites with each checkpoint (base model "
       "included) and score them. Outputs are cached by model, adapter, prompt and sampling: "
       "re-running only fills the gaps.")

NEW_TAB, JOBS_TAB, RESULTS_TAB = (":material/play_circle: New evaluation",
                                  ":material/monitoring: Jobs", ":material/table: Results")
POLL = "2s"


def linked_checkpoint(ckpts: list[str]) -> None:
    """`?checkpoint=ID`: preselect it with its base model, once per link."""
    link = st.query_params.get("checkpoint")
    if not link or link == st.session_state.get("eval_link"):
        return
    st.session_state["eval_link"] = link
    if link not in ckpts:
        st.warning(f"The link names checkpoint {literal(link)}, which is not in this workspace.",
                   icon=":material/link_off:")
        return
    ok, ref = call("Checkpoint", resolve, store(), link)
    base = base_checkpoint_id(ref.base_model) if ok else None
    st.session_state["eval_ckpts"] = [c for c in (base, link) if c in ckpts]
    open_tab("eval_tab", NEW_TAB)


def apply_launched(ids: list[str]) -> None:
    """The job launched on the last script run becomes the selected one, in the Jobs tab."""
    launched = st.session_state.pop("eval_launched", None)
    if launched in ids:
        st.session_state["eval_job"] = launched
        open_tab("eval_tab", JOBS_TAB)


def launch_form(suites: list[dict], ckpts: list[str], labels) -> None:
    if not suites or not ckpts:
        st.info("Needs a suite (create one from a dataset's held-out split) and a checkpoint "
                "(train a run on the Train page; its base model is registered with it).",
                icon=":material/info:")
        return
    if "eval_ckpts" not in st.session_state:
        st.session_state["eval_ckpts"] = list(dict.fromkeys(ckpts[:1] + ckpts[-1:]))
    st.session_state["eval_ckpts"] = [c for c in st.session_state["eval_ckpts"] if c in ckpts]
    with st.form("eval_form"):
        names = [s["name"] for s in suites]
        suite = st.selectbox("Suite", names, format_func=lambda n: next(
            f"{n} · {s['role']} · {s['n_rows']} rows · {', '.join(s['metrics'])}"
            for s in suites if s["name"] == n))
        chosen = st.multiselect("Checkpoints", ckpts, key="eval_ckpts", format_func=labels,
                                help="`base: …` entries are the untuned base models; the rest "
                                     "are a run's LoRA checkpoints (run / step).")
        backend = st.selectbox("Backend", BACKENDS,
                               help="hf: transformers, starts fast (good for small models). "
                                    "vllm: one engine serves every checkpoint as a LoRA "
                                    "adapter (best for many checkpoints or big models).")
        go = st.form_submit_button("Launch evaluation", type="primary",
                                   icon=":material/rocket_launch:")
    if go:
        ok, run_id = call("Launch", launch_eval, store(), suite, chosen, backend)
        if ok:
            st.session_state["eval_launched"] = run_id
            st.session_state["eval_flash"] = (f"Launched eval job "
                                              f"{literal(runs.run_label({'id': run_id}))}.")
            st.rerun()


def jobs_panel(first: list[dict], labels) -> None:
    was_active = {r["id"] for r in first if r["state"] in runs.ACTIVE}

    @st.fragment(run_every=POLL if was_active else None)
    def panel() -> None:
        current = st.session_state.pop("eval_runs_now", None)
        if current is None:  # a fragment re-run
            current = list_runs(kind="eval")
        if {r["id"] for r in current if r["state"] in runs.ACTIVE} != was_active:
            st.rerun(scope="app")  # a job ended or started: store results, refresh the page
        if not current:
            st.caption("No evaluation jobs yet.")
            return
        ids = [r["id"] for r in current]
        focus = st.session_state.get("eval_job")
        focus = focus if focus in ids else ids[0]
        shown = current[:10]
        if focus not in ids[:10]:
            shown.insert(0, next(r for r in current if r["id"] == focus))
        for run in shown:
            job_card(run, labels, selected=run["id"] == focus)
        if len(current) > len(shown):
            st.caption(f"{len(current) - len(shown)} older jobs not shown.")

    st.session_state["eval_runs_now"] = first
    panel()


def job_card(run: dict, labels, selected: bool) -> None:
    """Progress overall and per checkpoint, cancel, error and log of one eval job; the selected
    one (the newest, or the one just launched) opens its log."""
    status = read_status(run["run_dir"])
    with st.container(border=True):
        top, right = st.columns([6, 1])
        mark = ":material/arrow_right: " if selected else ""
        top.markdown(f"{mark}**{literal(runs.run_label(run))}** — {run['state']}")
        if run["state"] in runs.ACTIVE and right.button("Cancel", key=f"cancel-{run['id']}",
                                                        icon=":material/stop_circle:"):
            ok, _ = call("Cancel", cancel, store(), run["id"])
            if ok:
                st.rerun(scope="app")
        frac = runs.progress(run)
        if frac is not None:  # full width, as the per-checkpoint bars: a done job reads full
            st.progress(frac, text=runs.progress_text(run, status))
        rows = runs.checkpoint_progress(status)
        for r in rows:  # per checkpoint: what is generated of what it needs
            st.progress(min(1.0, r["fraction"]), text=f"{labels(r['checkpoint'])}: "
                                                      f"{r['done']} of {r['total']} generations")
        if not rows and run["state"] == "completed":
            st.caption("Every output was cached already: nothing to generate.")
        if run.get("error"):
            st.error(literal(run["error"].splitlines()[0]))
        with st.expander("Log", expanded=selected and run["state"] != "completed"):
            st.code(runs.log_tail(run, 60) or "(no log yet)", language=None)


def results_tab(labels) -> None:
    latest = latest_results(store())
    if not latest:
        st.caption("No stored results yet.")
        return
    table = pd.DataFrame([{"suite": r["suite"], "checkpoint": labels(r["checkpoint"]),
                           **r["summary"], "scored": r["created_at"]} for r in latest])
    metric_cols = [c for c in table.columns if c not in ("suite", "checkpoint", "scored")]
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        **{c: st.column_config.NumberColumn(format="%.3f") for c in metric_cols},
        "scored": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm")})
    st.caption("Open **Compare** for paired differences, confidence intervals and examples.")


suites = list_suites(store())
ckpts = checkpoint_ids(store())
eval_runs = list_runs(kind="eval")
call("Storing finished results", ingest_finished, store(), eval_runs)  # also done by the sidebar
train_runs = {r["id"]: r for r in list_runs(kind="train", do_refresh=False)}


def ckpt_label(checkpoint: str) -> str:
    return runs.checkpoint_label(checkpoint, train_runs)


if "eval_flash" in st.session_state:
    st.success(st.session_state.pop("eval_flash"), icon=":material/rocket_launch:")
linked_checkpoint(ckpts)
apply_launched([r["id"] for r in eval_runs])
m = st.columns(3)
m[0].metric("Suites", len(suites), help="Task suites measure the goal; general suites measure "
            "forgetting against the base model.")
m[1].metric("Checkpoints", len(ckpts))
m[2].metric("Eval jobs", len(eval_runs))

tab_new, tab_jobs, tab_results = switchable_tabs([NEW_TAB, JOBS_TAB, RESULTS_TAB],
                                                 "eval_tab")
with tab_new:
    launch_form(suites, ckpts, ckpt_label)
with tab_jobs:
    jobs_panel(eval_runs, ckpt_label)
with tab_results:
    results_tab(ckpt_label)
