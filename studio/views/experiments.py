"""Experiments page: every training run with its group, exact dataset version, key config,
state and held-out metrics (evals.experiments); pick two to see the config diff and overlaid
loss curves; evaluate a finished run's checkpoint; cancel the rest of a group; queue a sweep or
an ablation and read its report once its runs are done (studio.ui.experiment_forms).

`?run=ID` opens the page with that run picked.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from evals.experiments import (
    ACTIVE_STATES,
    cancel_rest,
    config_diff,
    experiments,
    loss_curves,
    metric_names,
    sort_by_metric,
    table,
)
from studio.ui.experiment_forms import ablation_form, group_report, sweep_form
from studio.ui.session import call, store
from studio.ui.text import literal
from studio.ui.widgets import header

VIEWS = Path(__file__).resolve().parent
NOT_SORTED = "newest first"

header("Experiments", "Every training run with the exact data version it trained on, its key "
       "settings and its held-out scores. Pick two runs to see what differs and how their "
       "losses compare.")

with st.expander("New sweep: one run per combination of settings", icon=":material/tune:"):
    sweep_form()
with st.expander("New ablation: one run per curation step of a dataset version",
                 icon=":material/account_tree:"):
    ablation_form()

ok, rows = call("Reading runs", experiments, store())
if not ok:
    st.stop()
if not rows:
    st.info("No training runs yet: launch one on the Train page, or queue a sweep or an "
            "ablation above.", icon=":material/info:")
    st.stop()

names = metric_names(rows)
by_id = {r["run_id"]: r for r in rows}


def label(run_id: str) -> str:
    r = by_id[run_id]
    return f"{r['name']} ({run_id})" if r["name"] else run_id


def chart_label(run_id: str) -> str:
    """The run's name when no other run has it (legends stay short), else its id."""
    name = by_id[run_id]["name"]
    return name if name and sum(r["name"] == name for r in rows) == 1 else run_id


def loss_frame(curves: pd.DataFrame, series: str) -> pd.DataFrame:
    """step x run table of one loss (a line per run in st.line_chart)."""
    data = curves[curves["series"] == series]
    return data.pivot_table(index="step", columns="run", values="value")


m = st.columns(4)
m[0].metric("Runs", len(rows))
m[1].metric("Groups", len({r["group_id"] for r in rows if r["group_id"]}))
m[2].metric("Evaluated", sum(bool(r["metrics"]) for r in rows))
m[3].metric("Queued or running", sum(r["state"] in ACTIVE_STATES for r in rows))

sort_on = st.selectbox("Sort by held-out metric", [NOT_SORTED] + names, key="exp_sort",
                       help="Best first; runs not evaluated on it go last.")
shown = rows if sort_on == NOT_SORTED else sort_by_metric(rows, sort_on)
frame = pd.DataFrame(table(shown))
frame["base_model"] = [Path(str(m)).name if m else m for m in frame["base_model"]]
for n in names:
    frame[n] = pd.to_numeric(frame[n])   # not evaluated: an empty cell, not "None"
if sort_on != NOT_SORTED and shown[0]["metrics"].get(sort_on) is not None:
    best = shown[0]
    st.markdown(f"Best on {literal(sort_on)}: {literal(label(best['run_id']))} · "
                f"{best['metrics'][sort_on]:.3f} (checkpoint "
                f"{literal(best['evaluated_checkpoint'])})")
st.dataframe(frame, hide_index=True, width="stretch",
             column_config={"learning_rate": st.column_config.NumberColumn(format="%.0e"),
                            **{n: st.column_config.NumberColumn(format="%.3f") for n in names}})

# --- one run: details and "evaluate this checkpoint" -----------------------------------------
st.subheader("Run", anchor=False)
wanted = str(st.query_params.get("run", ""))
if wanted and wanted not in by_id:
    st.warning(f"Run {literal(wanted)} is not in this workspace.", icon=":material/warning:")
ids = [r["run_id"] for r in shown]
run_id = st.selectbox("Run", ids, index=ids.index(wanted) if wanted in by_id else 0,
                      format_func=label, key="exp_run", label_visibility="collapsed")
if run_id != wanted:
    st.query_params["run"] = run_id   # the URL reproduces the view
run = by_id[run_id]
c = st.columns([2, 1])
with c[0]:
    st.dataframe(pd.DataFrame([{"field": k, "value": str(v)} for k, v in run["config"].items()]),
                 hide_index=True, width="stretch", height=240)
with c[1]:
    st.metric("State", "stopped by halving" if run["halving_note"] else run["state"])
    if run["halving_note"]:
        st.caption(literal(run["halving_note"]))
    st.caption(f"Data: {literal(run['dataset'])}")
    if run["group"]:
        st.caption(f"Group: {literal(run['group'])} ({run['group_kind']})")
    if run["checkpoint"] and run["state"] == "completed":
        st.page_link(VIEWS / "evaluate.py", label="Evaluate this checkpoint",
                     icon=":material/fact_check:", query_params={"checkpoint": run["checkpoint"]})
        st.page_link(VIEWS / "playground.py", label="Try it in the Playground",
                     icon=":material/chat:", query_params={"checkpoint": run["checkpoint"]})
    elif not run["checkpoint"]:
        st.caption("No checkpoint yet.")
    for metric, value in run["metrics"].items():
        st.caption(f"{metric}: {value:.3f} ({literal(run['evaluated_checkpoint'])})")

# --- two runs: config diff and overlaid loss curves ------------------------------------------
st.subheader("Compare two runs", anchor=False)
default = list(dict.fromkeys([run_id] + [i for i in ids if i != run_id]))[:2]
pair = st.multiselect("Runs to compare", ids, default=default, max_selections=2,
                      format_func=label, key="exp_pair")
if len(pair) == 2:
    a, b = (by_id[i] for i in pair)
    diff = config_diff(a, b)
    left, right = st.columns([1, 1])
    with left:
        st.markdown("**Config differences**")
        if diff:
            st.table(pd.DataFrame([{"field": d["field"], chart_label(a["run_id"]): str(d["a"]),
                                    chart_label(b["run_id"]): str(d["b"])} for d in diff])
                     .set_index("field"))
        else:
            st.caption("Same config.")
        if a["dataset"] != b["dataset"]:
            st.caption(f"Data: {literal(a['dataset'])} vs {literal(b['dataset'])}")
    with right:
        ok, points = call("Reading losses", loss_curves, store(), pair)
        if ok and points:
            curves = pd.DataFrame([{**p, "run": chart_label(p["run_id"])} for p in points])
            for series in ("loss", "eval_loss"):
                if (curves["series"] == series).any():
                    st.markdown(f"**{series}**")
                    st.line_chart(loss_frame(curves, series), x_label="step", y_label=series,
                                  height=220)
        elif ok:
            st.caption("No losses logged yet.")
else:
    st.caption("Pick two runs.")

# --- groups: cancel the rest ------------------------------------------------------------------
groups = {}
for r in rows:
    if r["group_id"]:
        groups.setdefault(r["group_id"], []).append(r)
if groups:
    st.subheader("Groups", anchor=False)
    for group_id, members in groups.items():
        active = [r for r in members if r["state"] in ACTIVE_STATES]
        states = ", ".join(f"{s} {sum(r['state'] == s for r in members)}"
                           for s in sorted({r["state"] for r in members}))
        cols = st.columns([3, 1])
        cols[0].markdown(f"{literal(members[0]['group'])} · {members[0]['group_kind']} · "
                         f"{len(members)} runs · {states}")
        if cols[1].button(f"Cancel the rest ({len(active)})", key=f"cancel_{group_id}",
                          disabled=not active, icon=":material/cancel:"):
            ok, cancelled = call("Cancelling", cancel_rest, store(), group_id)
            if ok:
                st.toast(f"Cancelled {len(cancelled)} run(s).", icon=":material/check:")
                st.rerun()

# --- sweeps and ablations: the report the CLI prints -----------------------------------------
st.subheader("Sweep and ablation reports", anchor=False)
group_report()
