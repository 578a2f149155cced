"""Compare page: checkpoint x metric with CIs, paired differences vs a baseline, examples,
forgetting on general suites, metric over checkpoints and per-category breakdown."""

from __future__ import annotations

from functools import partial

import altair as alt
import pandas as pd
import streamlit as st

from evals.backends import CacheOnly
from evals.compare import compare
from evals.results import evaluated_checkpoints, generation_count
from evals.suites import list_suites
from studio.ui import charts, compare_data
from studio.ui.diff import side_by_side
from studio.ui.session import call, store, workspace_path
from studio.ui.text import literal
from studio.ui.widgets import header
from training.checkpoints import parse_checkpoint_id
from training.listing import run_names

header("Compare", "Which checkpoint is best, what got better, what got worse and what the "
       "model forgot — paired statistics on the same prompts, from cached outputs.")


def is_base(checkpoint: str) -> bool:
    parsed = parse_checkpoint_id(checkpoint)
    return parsed is not None and parsed.base_model is not None


@st.cache_data(show_spinner="Comparing…", max_entries=64)
def comparison(ws: str, suite: str, baseline: str, candidate: str, cache_key: int) -> dict:
    """Memoized per cache state: the comparison only changes when new outputs land. The page
    reads cached outputs only (a backend that refuses to generate): a view never loads a model;
    evaluations run as jobs from the Evaluate page."""
    backend = CacheOnly("evaluate it on the Evaluate page first")
    return compare(store(), suite, baseline, candidate, backend=backend).to_dict()


def compare_all(suite: str, baseline: str, candidates: list[str]) -> list[dict]:
    key = generation_count(store())
    return [comparison(str(workspace_path()), suite, baseline, c, key) for c in candidates]


# Task suites first: what the run should improve is what a reviewer opens first.
suites = sorted(list_suites(store()), key=lambda s: (s["role"] != "task", s["name"]))
label = partial(compare_data.short, run_names=run_names(store()))
ready = {s["name"]: evaluated_checkpoints(store(), s["name"]) for s in suites}
usable = [s["name"] for s in suites if len(ready[s["name"]]) >= 2]
if not usable:
    st.info("Evaluate at least two checkpoints (the base model counts) on a suite first, on "
            "the **Evaluate** page.", icon=":material/info:")
    st.stop()

c1, c2, c3 = st.columns([2, 2, 4])
suite = c1.selectbox("Suite", usable, key="cmp_suite",
                     help="Only suites with stored outputs of two or more checkpoints.")
evaluated = ready[suite]
baseline = c2.selectbox("Baseline", evaluated, key="cmp_baseline", format_func=label,
                        help="Differences are candidate − baseline on the same prompts.")
others = [c for c in evaluated if c != baseline]
candidates = c3.multiselect("Candidates", others, default=others, key="cmp_candidates",
                            format_func=label)
if not candidates:
    st.stop()
ok, comps = call("Comparison", compare_all, suite, baseline, candidates)
if not ok:
    st.stop()

long = compare_data.checkpoint_metric_table(comps, label=label)
paired = compare_data.paired_table(comps, label=label)
for warning in compare_data.warnings(comps):
    st.warning(literal(warning), icon=":material/warning:")

t1, t2, t3, t4 = st.tabs([":material/leaderboard: Summary", ":material/difference: Examples",
                          ":material/trending_down: Forgetting",
                          ":material/category: Categories"])
with t1:
    st.subheader("Checkpoint × metric", help="Mean with its 95% confidence interval.")
    st.dataframe(compare_data.wide_table(long), hide_index=True, width="stretch")
    metric = st.selectbox("Metric for the charts", list(dict.fromkeys(long["metric"])),
                          key="cmp_metric")
    sub = long[long["metric"] == metric]
    left, right = st.columns(2)
    left.markdown("**Mean with 95% CI**")
    left.altair_chart(charts.bars_with_ci(sub, "checkpoint", "mean", "low", "high"),
                      width="stretch", height=300)
    right.markdown("**Metric over checkpoints** — pick the best one")
    band = alt.Chart(sub).mark_area(opacity=0.15, color=charts.ACCENT).encode(
        x=alt.X("checkpoint:O", sort=None), y=alt.Y("low:Q", title=metric), y2="high:Q")
    right.altair_chart(band + charts.line_over(sub.assign(metric=metric), "checkpoint", "mean",
                                               "metric"), width="stretch", height=300)
    st.subheader(f"Paired difference vs {literal(label(baseline))}",
                 help="Per-example differences on the same prompts; bootstrap CI, exact McNemar "
                      "for pass/fail metrics. `worse`/`better` count examples that flipped.")
    st.dataframe(paired, hide_index=True, width="stretch", column_config={
        "diff": st.column_config.NumberColumn(format="%+.3f"),
        "ci_low": st.column_config.NumberColumn("CI low", format="%+.3f"),
        "ci_high": st.column_config.NumberColumn("CI high", format="%+.3f"),
        "p_value": st.column_config.NumberColumn("p", format="%.4f"),
        "significant": st.column_config.CheckboxColumn("p < 0.05")})

with t2:
    names = [c["candidate"] for c in comps]
    pick = st.selectbox("Candidate", names, index=len(names) - 1, key="cmp_example_candidate",
                        format_func=label)
    comp = comps[names.index(pick)]
    kind = st.radio("Show", ["regressions", "improvements"], horizontal=True, key="cmp_kind",
                    help="Examples whose primary metric got worse / better, largest change first.")
    st.caption(f"{len(comp['regressions'])} regressions · {len(comp['improvements'])} "
               f"improvements vs {literal(label(baseline))} (showing up to 25)")
    if not comp[kind]:
        st.caption(f"No {kind} on this suite.")
    for ex in comp[kind][:25]:
        with st.container(border=True):
            st.markdown(f"{literal(ex['row_id'])} · **{literal(ex['metric'])}** "
                        f"{ex['baseline_score']:.2f} → {ex['candidate_score']:.2f}"
                        + (f" · {literal(ex['category'])}" if ex.get("category") else ""))
            a, b = st.columns(2)
            a.caption("Prompt")
            a.text(ex["prompt"])
            b.caption("Reference")
            b.text(ex.get("reference") or "—")
            st.html(side_by_side(ex["baseline_output"], ex["candidate_output"],
                                 f"baseline · {label(baseline)}",
                                 f"candidate · {label(pick)}"))

with t3:
    general = [s["name"] for s in suites if s["role"] == "general"]
    if not general:
        st.caption("No general suites: add one with role `general` to measure forgetting.")
    rows = []
    for g in general:
        have = evaluated_checkpoints(store(), g)
        base = next((c for c in have if is_base(c)), None)
        todo = [c for c in candidates if c in have and c != base]
        if base is None or not todo:
            st.caption(f"{literal(g)}: evaluate the base model and the candidates on it to see "
                       "forgetting.")
            continue
        ok, got = call("Forgetting", compare_all, g, base, todo)
        for comp in got or []:
            for m in comp["metrics"]:
                rows.append({"suite": g, "checkpoint": label(comp["candidate"]),
                             "metric": m["metric"], "change": m["diff"],
                             "ci_low": m["ci_low"], "ci_high": m["ci_high"],
                             "p": m.get("p_value")})
    if rows:
        frame = pd.DataFrame(rows)
        st.markdown("**Change vs base model on general suites** (below 0 = forgotten)")
        st.altair_chart(charts.bars_with_ci(frame.assign(label=frame["suite"] + " · "
                                                         + frame["metric"]),
                                            "checkpoint", "change", "ci_low", "ci_high",
                                            color="label"),
                        width="stretch")
        st.dataframe(frame, hide_index=True, width="stretch")

with t4:
    cats = compare_data.breakdown_table(comps, label=label)
    if cats.empty:
        st.caption("This suite's rows have no categories.")
    else:
        st.dataframe(cats, hide_index=True, width="stretch", column_config={
            "diff": st.column_config.NumberColumn(format="%+.3f")})
        st.altair_chart(alt.Chart(cats).mark_bar().encode(
            x=alt.X("diff:Q", title="candidate − baseline"), y=alt.Y("category:N", title=None),
            color=alt.Color("candidate:N", legend=alt.Legend(orient="bottom")),
            yOffset="candidate:N", tooltip=["candidate", "category", "metric", "n", "diff"]),
            width="stretch")
