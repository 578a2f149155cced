"""Compare page: a verdict per candidate, checkpoint x metric with CIs, paired differences vs a
baseline, examples, forgetting on general suites, metric over checkpoints and per-category
breakdown.

Everything comes from stored per-example results (`evals.compare.compare_stored`: one query,
statistics computed once per results fingerprint and cached in the store), so a view never
loads a model or a tokenizer. The selection lives in the URL (widgets bound to query params),
so a link reproduces the view.
"""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from evals.backends import describe_identity
from evals.compare import ADJUST_NAMES, verdict
from evals.stats import format_p
from studio.ui import charts, compare_data, compare_reads
from studio.ui.diff import side_by_side
from studio.ui.session import call, store, workspace_path
from studio.ui.text import literal
from studio.ui.widgets import header
from training.checkpoints import parse_checkpoint_id

TABS = ["Summary", "Examples", "Forgetting", "Categories"]

header("Compare", "Which checkpoint is best, what got better, what got worse and what the "
       "model forgot — paired statistics on the same prompts, from stored results.")


def is_base(checkpoint: str) -> bool:
    parsed = parse_checkpoint_id(checkpoint)
    return parsed is not None and parsed.base_model is not None


def compare_all(suite: str, baseline: str, candidates: list[str]) -> list[dict]:
    return compare_reads.comparisons(str(workspace_path()), suite, baseline, tuple(candidates),
                                     stamp)


def reset_candidates(checkpoints: list[str]) -> None:
    """A new baseline: every other checkpoint becomes a candidate again (the old baseline too);
    set explicitly, as the browser would otherwise keep its filtered old selection."""
    st.session_state["cmp_candidates"] = [c for c in checkpoints
                                          if c != st.session_state["cmp_baseline"]]


# Memoized until the store file changes: a rerun reads nothing it has read before.
stamp = compare_reads.store_stamp(store())
index = compare_reads.page_index(str(workspace_path()), stamp)
suites = index["suites"]             # task suites first
names = index["run_names"]
label = compare_data.labeller(names)   # the label every page uses
ready = index["ready"]
usable = [s["name"] for s in suites if len(ready.get(s["name"], [])) >= 2]
if not usable:
    st.info("Evaluate at least two checkpoints (the base model counts) on a suite first, on "
            "the **Evaluate** page.", icon=":material/info:")
    st.stop()

c1, c2, c3 = st.columns([2, 2, 4])
suite = c1.selectbox("Suite", usable, key="cmp_suite", bind="query-params",
                     help="Only suites with stored outputs of two or more checkpoints.")
evaluated = ready[suite]
baseline = c2.selectbox("Baseline", evaluated, key="cmp_baseline", bind="query-params",
                        format_func=label, on_change=reset_candidates, args=(evaluated,),
                        help="Differences are candidate − baseline on the same prompts.")
others = [c for c in evaluated if c != baseline]
# All others by default; once chosen (or reset by a new baseline) the session holds the value.
chosen = "cmp_candidates" in st.session_state
candidates = c3.multiselect("Candidates", others, default=None if chosen else others,
                            key="cmp_candidates",
                            bind="query-params", format_func=label)
if not candidates:
    st.caption("Pick at least one candidate.")
    st.stop()
ok, comps = call("Comparison", compare_all, suite, baseline, candidates)
if not ok:
    st.stop()

# The answer first: one line per candidate, significance after the family's adjustment.
directed = [m for m in comps[0]["metrics"] if m["higher_is_better"] is not None]
metric_names = [m["metric"] for m in comps[0]["metrics"]]
lead = st.selectbox("Verdict on", [m["metric"] for m in directed] or metric_names,
                    key="cmp_metric", bind="query-params",
                    help="The metric the verdicts and charts use.")
for comp in comps:
    line = verdict(comp, lead, label=lambda c: literal(label(c)))
    row = next(m for m in comp["metrics"] if m["metric"] == lead)
    if not row.get("significant"):
        st.info(line, icon=":material/drag_handle:")
    elif (row["diff"] > 0) == (row["higher_is_better"] is not False):
        st.success(line, icon=":material/trending_up:")
    else:
        st.error(line, icon=":material/trending_down:")
adjust = ADJUST_NAMES.get(comps[0]["adjust"], comps[0]["adjust"])
backends = {describe_identity(c["backend"]) for c in comps}
st.caption(f"Outputs of {literal(', '.join(sorted(backends)))}, read from the stored results. "
           f"Significance: {adjust} adjustment over all {comps[0]['family_size']} tests shown "
           "(every candidate × metric with a direction).")

long = compare_data.checkpoint_metric_table(comps, label=label)
tabs = dict(zip(TABS, st.tabs(TABS, key="cmp_tab", bind="query-params"), strict=True))

if tabs["Summary"].open:
    with tabs["Summary"]:
        for warning in compare_data.warnings(comps):
            st.warning(literal(warning), icon=":material/warning:")
        st.subheader("Checkpoint × metric", help="Mean with its 95% confidence interval.")
        st.dataframe(compare_data.wide_table(long), hide_index=True, width="stretch")
        sub = long[long["metric"] == lead]
        row = next(m for m in comps[0]["metrics"] if m["metric"] == lead)
        best = compare_data.best_checkpoint(sub, row["higher_is_better"])
        left, right = st.columns(2)
        left.markdown(f"**{literal(lead)}: mean with 95% CI**")
        left.altair_chart(charts.bars_with_ci(sub, "checkpoint", "mean", "low", "high",
                                              best=best, x_title="checkpoint", y_title=lead),
                          width="stretch", height=300)
        right.markdown(f"**{literal(lead)} over checkpoints** — lines join the steps of one run")
        frame = compare_data.over_checkpoints(sub, [baseline, *candidates], names,
                                              label=label)
        right.altair_chart(charts.metric_over_checkpoints(frame, lead, best=best),
                           width="stretch", height=300)
        st.subheader(f"Paired difference vs {literal(label(baseline))}",
                     help="Per-example differences on the same prompts; bootstrap CI, exact "
                          "McNemar for pass/fail metrics. `worse`/`better` count examples "
                          "that flipped. Significance uses the adjusted p.")
        st.dataframe(compare_data.paired_table(comps, label=label), hide_index=True,
                     width="stretch", column_config={
                         "diff": st.column_config.NumberColumn(format="%+.3f"),
                         "ci_low": st.column_config.NumberColumn("CI low", format="%+.3f"),
                         "ci_high": st.column_config.NumberColumn("CI high", format="%+.3f"),
                         "p": st.column_config.TextColumn("p"),
                         "p_adjusted": st.column_config.TextColumn(f"p ({adjust}-adjusted)"),
                         "significant": st.column_config.CheckboxColumn(
                             "significant", help=f"{adjust}-adjusted p < 0.05")})

if tabs["Examples"].open:
    with tabs["Examples"]:
        picked = [c["candidate"] for c in comps]
        pick = st.selectbox("Candidate", picked, index=len(picked) - 1,
                            key="cmp_example_candidate", format_func=label)
        comp = comps[picked.index(pick)]
        kind = st.radio("Show", ["regressions", "improvements"], horizontal=True,
                        key="cmp_kind", help="Examples whose primary metric got worse / "
                                             "better, largest change first.")
        st.caption(f"{len(comp['regressions'])} regressions · {len(comp['improvements'])} "
                   f"improvements vs {literal(label(baseline))} (showing up to 25). ✓/✗ say "
                   "whether each answer is right; highlighted words differ between the two.")
        if not comp[kind]:
            st.caption(f"No {kind} on this suite.")
        binary = {m["metric"]: m["binary"] for m in comp["metrics"]}
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
                                     f"candidate · {label(pick)}",
                                     score_a=ex["baseline_score"],
                                     score_b=ex["candidate_score"],
                                     binary=binary.get(ex["metric"], True)))

if tabs["Forgetting"].open:
    with tabs["Forgetting"]:
        general = [s["name"] for s in suites if s["role"] == "general"]
        if not general:
            st.caption("No general suites: add one with role `general` to measure forgetting.")
        rows = []
        for g in general:
            have = ready.get(g, [])
            base = next((c for c in have if is_base(c)), None)
            todo = [c for c in candidates if c in have and c != base]
            if base is None or not todo:
                st.caption(f"{literal(g)}: evaluate the base model and the candidates on it "
                           "to see forgetting.")
                continue
            ok, got = call("Forgetting", compare_all, g, base, todo)
            for warning in compare_data.warnings(got or []):
                st.warning(f"{literal(g)}: {literal(warning)}", icon=":material/warning:")
            for comp in got or []:
                for m in comp["metrics"]:
                    rows.append({"suite": g, "checkpoint": label(comp["candidate"]),
                                 "metric": m["metric"], "change": m["diff"],
                                 "ci_low": m["ci_low"], "ci_high": m["ci_high"],
                                 "p_adjusted": format_p(m.get("p_adjusted"), "p")
                                 .removeprefix("p "),
                                 "forgotten": bool(m.get("significant"))
                                 and (m["diff"] < 0) == (m["higher_is_better"] is not False)})
        if rows:
            frame = pd.DataFrame(rows)
            st.markdown("**Change vs base model on general suites** (below 0 = forgotten)")
            st.altair_chart(charts.bars_with_ci(
                frame.assign(series=frame["suite"] + " · " + frame["metric"]), "checkpoint",
                "change", "ci_low", "ci_high", color="series", x_title="checkpoint",
                y_title="change vs base model"), width="stretch")
            st.dataframe(frame, hide_index=True, width="stretch", column_config={
                "change": st.column_config.NumberColumn(format="%+.3f"),
                "ci_low": st.column_config.NumberColumn("CI low", format="%+.3f"),
                "ci_high": st.column_config.NumberColumn("CI high", format="%+.3f"),
                "p_adjusted": st.column_config.TextColumn(f"p ({adjust}-adjusted)")})

if tabs["Categories"].open:
    with tabs["Categories"]:
        cats = compare_data.breakdown_table(comps, label=label)
        if cats.empty:
            st.caption("This suite's rows have no categories.")
        else:
            shown = cats[cats["metric"] == lead]
            st.altair_chart(alt.Chart(shown).mark_bar().encode(
                x=alt.X("diff:Q", title=f"candidate − baseline ({lead})",
                        axis=alt.Axis(format="+.2f")),
                y=alt.Y("category:N", title="category"),
                color=alt.Color("checkpoint:N", sort=None, scale=alt.Scale(range=charts.PALETTE),
                                legend=alt.Legend(orient="bottom", title="candidate",
                                                  labelLimit=260)),
                yOffset=alt.YOffset("checkpoint:N", sort=None),
                tooltip=["checkpoint", "category", "metric", "n",
                         alt.Tooltip("diff:Q", format="+.3f")]), width="stretch")
            st.dataframe(cats, hide_index=True, width="stretch", column_config={
                "diff": st.column_config.NumberColumn(format="%+.3f"),
                "baseline_mean": st.column_config.NumberColumn("baseline", format="%.3f"),
                "candidate_mean": st.column_config.NumberColumn("candidate", format="%.3f")})
