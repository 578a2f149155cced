"""Curate page: dedup and scoring in the background, cluster review, filters, versions, diff."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from curation.browse import count, filter_version
from curation.datasets import diff
from curation.decontam import decontaminate
from curation.dedup import DEDUP_METHODS, KEEP_POLICIES, clusters, dedup, save_keepers
from curation.filters import Condition
from curation.overview import score_ranges
from curation.scoring import SCORERS, score
from curation.split import split
from evals.metrics import REGISTRY
from evals.suites import ROLES, list_suites, suite_from_dataset
from evals.types import SamplingConfig
from kernel.version_names import first_free_name
from studio.ui import background
from studio.ui.data import dataset_overview, versions_of
from studio.ui.session import call, store, workspace_path
from studio.ui.text import literal
from studio.ui.widgets import flash, header, linked_ref_pickers, select_version
from training.listing import base_model_choices

# A finished step shows its result within 1 s (issue 11): a step that ends within SYNC_S of the
# click is shown by the click's own run (most steps on small data); a longer one by the panel,
# which polls every POLL_S while it runs and reruns the page as soon as the task's state flips.
SYNC_S = 1.0
POLL_S = 0.25

header("Curate", "Remove duplicates, score rows, filter by thresholds and save the result as a "
       "new immutable version. Long work runs in the background; the page stays usable.")

SCOPE = str(workspace_path())
names = [d["name"] for d in dataset_overview(store())]
if not names:
    st.info("No datasets yet: import one on the **Datasets** page first.", icon=":material/info:")
    st.stop()

# A task that finished since this session last looked made a new version: show it. Tasks that
# ended before the session started (another tab's) are only listed, never switched to.
seen = st.session_state.setdefault("curate_seen_tasks",
                                   {t.id for t in background.tasks("", SCOPE)
                                    if t.state != "running"})
for task in background.tasks("", SCOPE):
    if task.state != "running" and task.id not in seen:
        seen.add(task.id)
        made = task.result.get("ref") if isinstance(task.result, dict) else None
        if task.state == "completed" and made and "@" in made:
            select_version("curate_version", made, dataset_key="curate_dataset")
c1, c2, _ = st.columns([2, 1, 3])
dataset, version = linked_ref_pickers(names, "curate_dataset", "curate_version", (c1, c2))
ref = f"{dataset}@{version}" if version else dataset
flash("curate_version")


def saved(out: dict, message: str) -> None:
    """A step made version out["ref"]: select it, say so once, redraw the page."""
    select_version("curate_version", out["ref"], message, dataset_key="curate_dataset")
    st.rerun()


def run_step(prefix: str, label: str, fn, *args, **kwargs) -> None:
    """Start a step in the background and give it SYNC_S to finish, so that the panel drawn
    next in this same run shows a short step's result at once (no poll, no extra rerun
    first); the panel then reruns the page to select the version the step made. A longer
    step is polled by the panel."""
    task = background.start(label, SCOPE, fn, *args, **kwargs)
    background.wait(task, timeout_s=SYNC_S)
    st.session_state[f"polling-{prefix}"] = True   # the panel reruns the page when it ends


def task_panel(prefix: str) -> None:
    """Progress of this page's background tasks; polls only while one runs. The finished
    task's result shows on the fragment's next tick (within POLL_S); then the whole page
    reruns once to select the version it made."""

    @st.fragment(run_every=POLL_S if background.any_running(prefix, SCOPE) else None)
    def panel() -> None:
        for task in background.tasks(prefix, SCOPE)[:3]:
            with st.container(border=True):
                if task.state == "running":
                    frac = task.fraction
                    st.progress(frac or 0.0, text=f"{literal(task.label)}: {task.done:,} / {task.total:,}"
                                if frac is not None else f"{literal(task.label)}: working…")
                elif task.state == "failed":
                    st.error(f"{literal(task.label)} failed: {literal(task.error)}")
                else:
                    made = task.result.get("ref") if isinstance(task.result, dict) else None
                    st.success(f"{literal(task.label)} finished in "
                               f"{task.finished - task.started:.1f}s"
                               + (f" → saved {literal(made)}" if made else ""),
                               icon=":material/check_circle:")
                    if task.result is not None:
                        summary(task.result)
        if not background.any_running(prefix, SCOPE) and st.session_state.get(f"polling-{prefix}"):
            st.session_state[f"polling-{prefix}"] = False
            st.rerun(scope="app")  # the page top switches to the version the task made
        st.session_state[f"polling-{prefix}"] = background.any_running(prefix, SCOPE)

    panel()


def summary(result) -> None:
    """A compact view of a library result: its scalar fields as metrics."""
    data = result if isinstance(result, dict) else getattr(result, "__dict__", {})
    scalars = {k: v for k, v in data.items() if isinstance(v, (int, float)) and
               not isinstance(v, bool)}
    if scalars:
        cols = st.columns(min(len(scalars), 5))
        for i, (k, v) in enumerate(list(scalars.items())[:5]):
            cols[i].metric(k.replace("_", " "), f"{v:,}" if isinstance(v, int) else v)


def dedup_tab() -> None:
    a, b, k, c = st.columns([2, 2, 1, 1], vertical_alignment="bottom")
    method = a.radio("Method", DEDUP_METHODS, horizontal=True, key="dedup_method",
                     help="exact: same conversation after normalizing Unicode, case, spaces · "
                          "near: MinHash Jaccard similarity · semantic: embedding cosine.")
    threshold = b.slider("Similarity threshold", 0.5, 1.0, 0.8, 0.01, key="dedup_threshold",
                         disabled=method == "exact",
                         help="Pairs at or above it fall into one cluster; lower finds more.")
    keep = k.selectbox("Keeper", KEEP_POLICIES, key="dedup_keep",
                       help="Which row of a cluster stays: the first in the file, the longest "
                            "response, or the tidiest (least stray whitespace, then first).")
    if c.button("Run dedup", type="primary", icon=":material/play_arrow:",
                disabled=background.any_running("Dedup", SCOPE)):
        kwargs = {"keep": keep} if method == "exact" else {"threshold": threshold, "keep": keep}
        run_step("Dedup", f"Dedup ({method}) of {ref}", dedup, store(), ref, method=method, **kwargs)
    st.caption("Dedup never deletes: it saves a new version where each cluster keeps one row "
               "and flags the rest.")
    task_panel("Dedup")
    clusters_review()


def clusters_review() -> None:
    page_size = 10
    page_no = int(st.session_state.get("cluster_page", 1))
    ok, got = call("Loading clusters", clusters, store(), ref, page_no, page_size)
    if not ok:
        return
    found, total = got
    found = [c for c in found if c["size"] > 1]
    if not found:
        if page_no == 1:
            st.caption("No duplicate clusters in this version: run a dedup, then review here.")
        return
    st.subheader("Duplicate clusters")
    st.caption("Largest first. Each cluster keeps one row (the keeper); choose another where "
               "the default is worse, then save a new version.")
    overrides = st.session_state.setdefault(f"keepers:{ref}", {})
    st.columns([1, 4])[0].number_input(f"Page of clusters (of {max(1, -(-total // page_size))})",
                                       1, max(1, -(-total // page_size)), key="cluster_page")
    for cluster in found:
        cid, members = cluster["cluster"], cluster["members"] or []
        keeper = overrides.get(cid, cluster["keeper"])
        with st.expander(f"Cluster {literal(cid)} · {len(members)} rows", expanded=cluster is found[0]):
            cols = st.columns(min(len(members), 3))
            for i, m in enumerate(members[:3]):
                uid = m["uid"]
                with cols[i].container(border=True):
                    sim = m.get("similarity")
                    st.markdown((":orange[:material/star:] **keeper**" if uid == keeper
                                 else ":gray[duplicate]")
                                + (f" · similarity {sim:.2f} to the row dedup kept"
                                   if sim is not None and m.get("similar_to") != uid else ""))
                    st.text(f"{m['id']} · line {m['source_line']}")
                    st.text(m["instruction"] or "")
                    st.text(m["response"] or "")
                    if uid != keeper and st.button("Keep this one", key=f"keep-{cid}-{uid}"):
                        overrides[cid] = uid
                        st.rerun()
            if len(members) > 3:
                st.caption(f"+ {len(members) - 3} more rows in this cluster")
    if overrides and st.button(
            f"Save new version with {len(overrides)} keeper change(s)", icon=":material/save:",
            type="primary"):
        ok, res = call("Saving keepers", save_keepers, store(), ref, dict(overrides))
        if ok:
            overrides.clear()
            saved(res, f"Saved {literal(res['ref'])}.")


def scores_tab() -> None:
    a, b, k, c = st.columns([2, 2, 1, 1], vertical_alignment="bottom")
    scorer = a.selectbox("Scorer", SCORERS, key="scorer",
                         help="heuristic: lengths, repetition, language… (instant, SQL). "
                              "perplexity / ifd / model: per-example response loss under a "
                              "model; IFD = loss with the instruction / loss without it.")
    models = base_model_choices(store())
    model = b.selectbox("Model", models or ["(none in workspace)"], key="score_model",
                        accept_new_options=True, disabled=scorer == "heuristic",
                        help="HF name or folder of the causal LM that computes the loss.")
    if c.button("Compute", icon=":material/calculate:", type="primary",
                disabled=background.any_running("Scoring", SCOPE)):
        kwargs = {} if scorer == "heuristic" else {"model": model}
        run_step("Scoring", f"Scoring ({scorer}) of {ref}", score, store(), ref, scorer=scorer, **kwargs)
    st.caption("Scoring saves a new version carrying the scores; filters on any later "
               "version can use them.")
    task_panel("Scoring")
    threshold_filter()


def threshold_filter() -> None:
    """Sliders per score; the count of rows kept updates live (a COUNT in DuckDB per change)."""
    st.subheader("Filter by thresholds")
    ranges = [r for r in score_ranges(store(), ref) if r["hi"] > r["lo"]]
    conds = []
    if st.checkbox("Drop rows flagged as duplicates", value=True, key="thr_dups",
                   help="Keeps only each duplicate cluster's keeper."):
        conds.append(Condition("is_dup", "=", False))
    cols = st.columns(3)
    for i, r in enumerate(ranges):
        lo, hi = float(r["lo"]), float(r["hi"])
        sel = cols[i % 3].slider(literal(r["name"]), lo, hi, (lo, hi), key=f"thr-{r['name']}",
                                 help="Rows whose score falls outside the range are dropped.")
        if sel[0] > lo:
            conds.append(Condition(r["name"], ">=", sel[0]))
        if sel[1] < hi:
            conds.append(Condition(r["name"], "<=", sel[1]))
    if not ranges:
        st.caption("Compute scores above to get a slider per score.")
    ok, kept = call("Counting", count, store(), ref, conds)
    ok_all, total = call("Counting", count, store(), ref, [])
    if ok and ok_all:
        st.metric("Rows kept", f"{kept:,} of {total:,}",
                  f"{kept - total:,} rows" if kept != total else None)
    if st.button("Save as new version", icon=":material/save:",
                                      disabled=not conds or (ok and ok_all and kept == total)):
        ok, out = call("Saving", filter_version, store(), ref, conds)
        if ok:
            saved(out, f"Saved {literal(out['ref'])} with {out['n_rows']:,} rows "
                       f"({out['n_removed']:,} removed).")


def versions_tab() -> None:
    rows = versions_of(store(), dataset)
    lines = ['digraph { rankdir=LR; node [shape=box, style="rounded,filled", fillcolor="#eef2ff", '
             'color="#4f46e5", fontname="Helvetica"];']
    for v in rows:
        lines.append(f'"{v["version"]}" [label="{v["version"]}\\n{v["operation"]} · '
                     f'{int(v["n_rows"] or 0):,} rows"];')
        if v["parent"]:
            lines.append(f'"{v["parent"]}" -> "{v["version"]}";')
    st.graphviz_chart("\n".join(lines) + "}", width="content")
    table = pd.DataFrame([{**v, "params": json.dumps(v.get("params") or {}, default=str)}
                          for v in rows])
    st.dataframe(table, hide_index=True, width="stretch",
                 column_config={"n_rows": st.column_config.NumberColumn("rows", format="%d"),
                                "created_at": st.column_config.DatetimeColumn("created")})
    with_parent = [v["version"] for v in rows if v["parent"]]
    if with_parent:
        pick = st.selectbox("Diff a version against its parent", with_parent, key="diff_version")
        parent = next(v["parent"] for v in rows if v["version"] == pick)
        ok, out = call("Diff", diff, store(), f"{dataset}@{parent}", f"{dataset}@{pick}")
        if ok:
            kinds = ("removed", "added", "changed", "reflagged")
            cols = st.columns(4)
            for col, kind in zip(cols, kinds, strict=True):
                col.metric(kind, f"{int(out[kind]):,}")
                ids = out[f"{kind}_ids"]
                if ids:
                    col.text("e.g. " + ", ".join(map(str, ids)))


def decontam_tab() -> None:
    st.caption("Drops training rows that share long n-grams with held-out rows of another "
               "dataset (its held-out split when it has one), and saves the rest as a new "
               "version. The report lists what was removed.")
    others = [n for n in names if n != dataset]
    if not others:
        st.caption("Import the dataset your eval suites come from to check against it.")
        return
    a, b, c = st.columns([2, 1, 1], vertical_alignment="bottom")
    against = a.selectbox("Check against", others, key="decontam_against")
    ngram = b.number_input("n-gram", 4, 32, 8, key="decontam_ngram",
                           help="Shared word n-gram length that counts as contamination.")
    if c.button("Decontaminate", icon=":material/policy:", type="primary"):
        ok, out = call("Decontamination", decontaminate, store(), ref, against, ngram=int(ngram))
        if ok:
            removed = ", ".join(map(str, out.get("flagged_ids") or []))
            saved(out, f"Saved {literal(out['ref'])}: {out['n_flagged']:,} of "
                       f"{out['n_checked']:,} training rows overlapped {out['n_eval']:,} "
                       f"held-out rows of {literal(against)}."
                       + (f" Removed (first 20): {literal(removed)}" if removed else ""))


def split_tab() -> None:
    """Hold out part of the version for evaluation, then freeze that part as an eval suite."""
    st.caption("A split marks a share of the unique rows as held out: training uses the rest, "
               "and an eval suite made from the held-out rows measures what training changed.")
    a, b, c = st.columns([2, 1, 1], vertical_alignment="bottom")
    held_out = a.slider("Held-out share", 0.05, 0.5, 0.1, 0.05, key="split_share")
    seed = b.number_input("Seed", 0, 10_000, 0, key="split_seed",
                          help="Which rows are held out; the same seed picks the same rows.")
    if c.button("Save split as new version", icon=":material/call_split:", type="primary"):
        ok, out = call("Split", split, store(), ref, held_out, seed=int(seed))
        if ok:
            saved(out, f"Saved {literal(out['ref'])}: {out['n_train']:,} train rows, "
                       f"{out['n_heldout']:,} held out.")
    st.subheader("Eval suite from the held-out rows")
    taken = [s["name"] for s in list_suites(store())]
    with st.form("suite_form", border=False):
        a, b = st.columns([2, 1])
        name = a.text_input("Suite name", value=first_free_name(f"{dataset}-heldout", taken),
                            help="The suite is a frozen copy of this version's held-out rows.")
        role = b.selectbox("Role", ROLES, key="suite_role",
                           help="task: what training should improve · general: what it "
                                "must not forget.")
        a, b = st.columns([2, 1])
        metrics = a.multiselect("Metrics", sorted(n for n, m in REGISTRY.items()
                                                  if not m.needs_arg),
                                default=["exact_match", "token_f1"], key="suite_metrics")
        max_new = b.number_input("Max new tokens", 1, 4096, 64, key="suite_max_new_tokens")
        if st.form_submit_button("Create suite", icon=":material/fact_check:", type="primary"):
            if name.strip() in taken:
                st.error(f"A suite named {literal(name.strip())} already exists: choose "
                         f"another name.", icon=":material/error:")
                return
            ok, suite = call("Creating the suite", suite_from_dataset, store(), name.strip(), ref,
                             role=role, metrics=metrics or ["exact_match"],
                             sampling=SamplingConfig(max_new_tokens=int(max_new)))
            if ok:
                st.success(f"Created suite {literal(suite.name)} with {len(suite.rows):,} rows "
                           f"from {literal(ref)}; evaluate checkpoints on it on the Evaluate page.",
                           icon=":material/check_circle:")


# Lazy tabs: only the open tab runs, so a rerun (a click, a finished step) stays short.
TABS = {":material/content_copy: Dedup": dedup_tab, ":material/tune: Scores & filters": scores_tab,
        ":material/call_split: Split & suite": split_tab,
        ":material/account_tree: Versions": versions_tab,
        ":material/policy: Decontamination": decontam_tab}
for tab, draw in zip(st.tabs(list(TABS), key="curate_tab", on_change="rerun"), TABS.values(),
                     strict=True):
    if tab.open is not False:  # None: an old session state without tracking; draw all
        with tab:
            draw()
