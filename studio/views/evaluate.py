"""Evaluate page: pick a suite and checkpoints, launch an eval job, watch it, see stored results."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from evals.backends import BACKENDS
from evals.jobs import ingest_finished, launch_eval
from evals.results import latest_results
from evals.suites import list_suites
from studio.ui import runs
from studio.ui.compare_data import short
from studio.ui.session import call, store
from studio.ui.status import list_runs
from studio.ui.text import literal
from studio.ui.widgets import header
from training.listing import checkpoint_ids

header("Evaluate", "Generate answers to held-out suites with each checkpoint (base model "
       "included) and score them. Outputs are cached by model, adapter, prompt and sampling: "
       "re-running only fills the gaps.")

suites = list_suites(store())
ckpts = checkpoint_ids(store())
eval_runs = list_runs(kind="eval")
call("Storing finished results", ingest_finished, store(), eval_runs)  # also done by the sidebar

m = st.columns(3)
m[0].metric("Suites", len(suites), help="Task suites measure the goal; general suites measure "
            "forgetting against the base model.")
m[1].metric("Checkpoints", len(ckpts))
m[2].metric("Eval jobs running", sum(r["state"] in runs.ACTIVE for r in eval_runs))

tab_new, tab_jobs, tab_results = st.tabs([":material/play_circle: New evaluation",
                                          ":material/monitoring: Jobs",
                                          ":material/table: Results"])
with tab_new:
    if not suites or not ckpts:
        st.info("Needs a suite (`studio suites add`) and a checkpoint (train a run on the Train "
                "page; its base model is registered with it).", icon=":material/info:")
    else:
        with st.form("eval_form"):
            names = [s["name"] for s in suites]
            suite = st.selectbox("Suite", names, format_func=lambda n: next(
                f"{n} · {s['role']} · {s['n_rows']} rows · {', '.join(s['metrics'])}"
                for s in suites if s["name"] == n))
            chosen = st.multiselect("Checkpoints", ckpts,
                                    default=list(dict.fromkeys(ckpts[:1] + ckpts[-1:])),
                                    format_func=short,
                                    help="`base:…` entries are the untuned base models; the rest "
                                         "are `<run>/step-N` LoRA checkpoints.")
            backend = st.selectbox("Backend", BACKENDS,
                                   help="hf: transformers, starts fast (good for small models). "
                                        "vllm: one engine serves every checkpoint as a LoRA "
                                        "adapter (best for many checkpoints or big models).")
            go = st.form_submit_button("Launch evaluation", type="primary",
                                       icon=":material/rocket_launch:")
        if go:
            ok, run_id = call("Launch", launch_eval, store(), suite, chosen, backend)
            if ok:
                st.success(f"Launched eval job `{run_id}`; follow it in **Jobs**.",
                           icon=":material/rocket_launch:")

with tab_jobs:
    active = any(r["state"] in runs.ACTIVE for r in eval_runs)

    @st.fragment(run_every="2s" if active else None)
    def jobs() -> None:
        current = list_runs(kind="eval")
        if not current:
            st.caption("No evaluation jobs yet.")
        for r in current[:10]:
            with st.container(border=True):
                st.markdown(f"**{literal(r.get('name') or r['id'])}** — {r['state']}")
                st.text(r["id"])
                frac = runs.progress(r)
                if frac is not None:
                    st.progress(frac, text=f"{frac:.0%}")
                if r.get("error"):
                    st.error(literal(r["error"].splitlines()[0]))
        if active and not any(r["state"] in runs.ACTIVE for r in current):
            st.rerun(scope="app")  # a job ended: ingest its results and stop polling

    jobs()

with tab_results:
    latest = latest_results(store())
    if not latest:
        st.caption("No stored results yet.")
    else:
        table = pd.DataFrame([{"suite": r["suite"], "checkpoint": short(r["checkpoint"]),
                               **r["summary"], "scored": r["created_at"]} for r in latest])
        metric_cols = [c for c in table.columns if c not in ("suite", "checkpoint", "scored")]
        st.dataframe(table, hide_index=True, width="stretch", column_config={
            **{c: st.column_config.NumberColumn(format="%.3f") for c in metric_cols},
            "scored": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm")})
        st.caption("Open **Compare** for paired differences, confidence intervals and examples.")
