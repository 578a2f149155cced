"""Datasets page: import with a preview, list datasets, browse rows page by page, histograms."""

from __future__ import annotations

import json

import altair as alt
import pandas as pd
import streamlit as st

from curation.dedup import cluster_members
from curation.edits import edit, exclude
from curation.export import FORMATS as EXPORT_FORMATS
from curation.formats import FORMATS
from curation.importer import import_file, preview
from curation.overview import LENGTHS, histogram, score_names
from kernel.version_names import first_free_name
from studio.ui import browse as browse_ui
from studio.ui.data import (
    DOWNLOADS,
    dataset_overview,
    default_dataset_name,
    download_name,
    export_download,
    save_upload,
)
from studio.ui.session import call, store, workspace_path
from studio.ui.text import literal
from studio.ui.widgets import chat_bubbles, flash, header, select_version, version_picker

FORMAT_CHOICES = ["auto", *FORMATS]
EXPORT_LABELS = {"jsonl": "JSONL", "parquet": "Parquet", "hf": "Hugging Face folder (zip)"}

header("Datasets", "Import instruction-response data, browse it row by row and look at its "
       "shape before curating.")

overview = dataset_overview(store())
names = [d["name"] for d in overview]
m1, m2, m3 = st.columns(3)
m1.metric("Datasets", len(overview))
m2.metric("Rows (latest versions)", f"{sum(int(d.get('rows') or 0) for d in overview):,}")
m3.metric("Versions", sum(int(d.get("versions") or 0) for d in overview))

tab_browse, tab_import, tab_stats = st.tabs([":material/search: Browse", ":material/upload: Import",
                                             ":material/bar_chart: Statistics"])


def import_tab() -> None:
    source = st.radio("Source", ["Upload a file", "Path or Hugging Face name"], horizontal=True,
                      key="import_source",
                      help="JSONL, JSON, CSV, Parquet, a `save_to_disk` folder or a hub name.")
    path = None
    if source == "Upload a file":
        up = st.file_uploader("Data file", type=["jsonl", "json", "csv", "parquet"],
                              help="Kept under <workspace>/uploads/ so errors can name it.")
        if up is not None:
            path = str(save_upload(workspace_path(), up.name, up.getvalue()))
    else:
        path = st.text_input("Path or dataset name", placeholder="/data/train.jsonl") or None
    c1, c2 = st.columns([1, 2])
    fmt = c1.selectbox("Format", FORMAT_CHOICES, key="import_format", help="`auto` detects alpaca, prompt/completion, "
                       "question/answer, OpenAI `messages` and ShareGPT `conversations`.")
    mapping_text = c2.text_input("Column mapping (JSON, optional)", placeholder='{"instruction": "question"}',
                                 help="Canonical field -> column in your file, when names differ.")
    if not path:
        st.caption("Choose a file to see its detected format and the first rows before importing.")
        return
    try:
        mapping = json.loads(mapping_text) if mapping_text.strip() else None
    except json.JSONDecodeError as exc:
        st.error(f"column mapping is not valid JSON: {literal(exc)}")
        return
    fmt_arg = None if fmt == "auto" else fmt
    ok, pv = call("Preview", preview, path, format=fmt_arg, mapping=mapping, n=5)
    if not ok:
        return
    f1, f2, f3 = st.columns([1, 1, 3])
    f1.metric("Source kind", pv.get("kind") or "?")
    f2.metric("Detected format", pv.get("format") or "?")
    f3.markdown("**Column mapping** (canonical field ← your column)")
    f3.code(", ".join(f"{k} ← {v}" for k, v in (pv.get("mapping") or {}).items()),
            language=None)
    rows = pv.get("rows") or []
    keys = [k for k in ("line", "id", "system", "instruction", "response", "category")
            if any(r.get(k) not in (None, "") for r in rows)]
    if rows:
        st.caption(f"First {len(rows)} rows as they will be stored:")
        st.dataframe(pd.DataFrame([{k: r.get(k) for k in keys} for r in rows]),
                     hide_index=True, width="stretch")
    suggested = first_free_name(default_dataset_name(path), names)
    with st.form("import_form", border=False):
        name = st.text_input("Dataset name", value=suggested,
                             help="A new name: importing never changes an existing dataset "
                                  "(curate it into new versions instead).")
        if suggested != default_dataset_name(path):
            st.caption(f"{literal(default_dataset_name(path))} is taken, so "
                       f"{literal(suggested)} is suggested.")
        if st.form_submit_button("Import", type="primary", icon=":material/download:"):
            if name.strip() in names:
                st.error(f"A dataset named {literal(name.strip())} already exists: choose "
                         f"another name, e.g. {literal(first_free_name(name.strip(), names))}.",
                         icon=":material/error:")
                return
            with st.spinner("Importing…"):
                ok, result = call("Import", import_file, store(), path, name.strip(),
                                  format=fmt_arg, mapping=mapping)
            if ok:
                st.session_state["import_done"] = (
                    f"Imported {result['n_rows']:,} rows into "
                    f"{literal(name.strip() + '@' + result['version'])} (format {result['format']}).")
                st.rerun()
    if "import_done" in st.session_state:
        st.success(st.session_state.pop("import_done"), icon=":material/check_circle:")


def row_detail(ref: str, row: dict) -> None:
    """One row: the conversation, and beside it its scores, duplicate flag and cluster."""
    st.subheader("Row detail")
    talk, facts = st.columns([3, 2])
    with talk:
        chat_bubbles(row)
    with facts:
        st.text(f"id: {row['id']}\nsplit: {row.get('split') or 'train'}\n"
                f"source: {row.get('source_file') or '?'} line {row.get('source_line')}")
        scores = row.get("scores") or {}
        if scores:
            st.dataframe(pd.DataFrame({"score": list(scores), "value": [str(v) for v in
                                                                        scores.values()]}),
                         hide_index=True, width="stretch")
        else:
            st.caption("No scores yet: compute them on the Curate page.")
        cluster = row.get("dup_cluster")
        if not cluster:
            st.text("duplicate: no (in no duplicate cluster)")
            return
        ok, got = call("Cluster", cluster_members, store(), ref, cluster)
        if not ok:
            return
        keeper = next((m for m in got["members"] if m["uid"] == got["keeper"]), None)
        st.text(f"duplicate: {'yes' if row.get('is_dup') else 'no, the keeper'}\n"
                f"cluster: {cluster} ({got['size']} rows)\n"
                f"keeper: {keeper['id'] if keeper else '?'}")
        others = [m["id"] for m in got["members"] if m["uid"] != row.get("uid")]
        if others:
            st.text("other rows: " + ", ".join(map(str, others[:10]))
                    + (" …" if len(others) > 10 else ""))


def edit_row(ref: str, row: dict) -> None:
    """Change the row's instruction or response; saved as a new version (rows are immutable)."""
    with st.form(f"edit-{ref}-{row['id']}", border=True):
        st.markdown("**Edit this row** · saved as a new version; the current one stays as it is")
        instruction = st.text_area("Instruction", value=row.get("instruction") or "")
        response = st.text_area("Response", value=row.get("response") or "")
        if st.form_submit_button("Save edit as new version", icon=":material/save:"):
            changed = {k: v for k, v in (("instruction", instruction), ("response", response))
                       if v != (row.get(k) or "")}
            if not changed:
                st.warning("Nothing changed.")
                return
            ok, out = call("Edit", edit, store(), ref, row["id"], **changed)
            if ok:
                select_version("browse_version", out["ref"],
                               f"Saved {literal(out['ref'])} with row {literal(row['id'])} edited.",
                               dataset_key="browse_dataset")
                st.rerun()


def exclude_rows(ref: str, rows: list[dict]) -> None:
    label = f"Exclude {len(rows)} selected row{'s' if len(rows) > 1 else ''} (new version)"
    if st.button(label, icon=":material/remove_circle:"):
        ok, out = call("Exclude", exclude, store(), ref, [r["id"] for r in rows])
        if ok:
            select_version("browse_version", out["ref"],
                           f"Saved {literal(out['ref'])} without {out['n_excluded']:,} rows.",
                           dataset_key="browse_dataset")
            st.rerun()


def export_version(ref: str) -> None:
    """Download the version (duplicates left out) as JSONL, Parquet or a zipped HF folder."""
    with st.container(border=True):
        st.markdown(f":material/download: **Export** {literal(ref)}")
        a, b, c = st.columns([2, 1, 1], vertical_alignment="bottom")
        fmt = a.radio("Format", EXPORT_FORMATS, format_func=EXPORT_LABELS.get, horizontal=True,
                      key="export_format")
        split = b.selectbox("Rows", ["all", "train", "heldout"], key="export_split",
                            help="The whole version, or one side of its split.")
        c.download_button("Download", data=lambda: export_download(
                              store(), ref, fmt, None if split == "all" else split),
                          file_name=download_name(ref, fmt), mime=DOWNLOADS[fmt][1],
                          icon=":material/download:", on_click="ignore", type="primary")
        st.caption("Rows flagged as duplicates are left out; each row keeps its id, "
                   "conversation, category and split, so importing the file again gives the "
                   "same rows.")


def stats_tab() -> None:
    if not names:
        st.caption("No datasets yet.")
        return
    c1, c2, c3 = st.columns(3)
    name = c1.selectbox("Dataset", names, key="stats_dataset")
    with c2:
        version = version_picker(name, key="stats_version")
    if version is None:
        return
    ref = f"{name}@{version}"
    measures = list(LENGTHS) + [f"score:{n}" for n in score_names(store(), ref)]
    measure = c3.selectbox("Measure", measures, key="stats_measure",
                           help="Lengths, or any score computed on Curate.")
    ok, h = call("Histogram", histogram, store(), ref, measure.removeprefix("score:"), bins=30)
    if not ok:
        return
    edges = h["edges"]
    data = pd.DataFrame({"bin": edges[:-1], "width": [b - a for a, b in zip(edges, edges[1:],
                                                                              strict=False)],
                         "n": h["counts"]}) if edges else pd.DataFrame()
    if h.get("labels"):
        st.text("Labels: " + ", ".join(f"{k} {v:,}" for k, v in h["labels"].items()))
    if data.empty:
        st.caption("Nothing to plot for this version.")
        return
    data["end"] = data["bin"] + data["width"].fillna(0)
    chart = alt.Chart(data).mark_bar(color="#4f46e5").encode(
        x=alt.X("bin:Q", title=measure, bin="binned"), x2="end:Q",
        y=alt.Y("n:Q", title="rows"), tooltip=["bin", "n"]).properties(height=320)
    st.altair_chart(chart, width="stretch")


with tab_browse:
    if overview:
        st.dataframe(pd.DataFrame(overview), hide_index=True, width="stretch",
                     column_config={"rows": st.column_config.NumberColumn("rows", format="%d"),
                                    "created_at": st.column_config.DatetimeColumn("created")})
        flash("browse_version")
        shown = browse_ui.browser(names)
        if shown is not None:
            if shown.selected:
                exclude_rows(shown.ref, shown.selected)
            if len(shown.selected) == 1:
                row_detail(shown.ref, shown.selected[0])
                edit_row(shown.ref, shown.selected[0])
            export_version(shown.ref)
    else:
        st.info("No datasets in this workspace yet: import one in the **Import** tab.",
                icon=":material/info:")
with tab_import:
    import_tab()
with tab_stats:
    stats_tab()
