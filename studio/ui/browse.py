"""The paged table browser: filters and paging go to DuckDB through `curation` browse.

Only one page of rows ever reaches the browser, so a 1M-row dataset scrolls as fast as a
small one. The filter box takes the same condition syntax as `studio browse --where`.
"""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from curation.browse import browse
from curation.filters import Condition, parse_where
from studio.ui.session import call, store
from studio.ui.widgets import version_picker

SHOWN = ["id", "instruction", "response", "category", "split", "is_dup", "resp_chars"]
SORTS = ["source order", "id", "resp_chars", "-resp_chars", "inst_chars", "-inst_chars",
         "category", "n_turns"]


def conditions_from(text: str, search: str):
    """The user's filter string (curation's syntax) plus a text search, as Conditions.

    The search box becomes a `text ~ value` Condition object directly, so quotes in what the
    user types never need escaping.
    """
    out = list(parse_where(text))
    if search.strip():
        out.append(Condition("text", "~", search.strip()))
    return out


def browser(names: list[str]) -> dict | None:
    """Dataset/version pickers, filters, one page of rows; returns the selected row or None."""
    c1, c2, c3, c4 = st.columns([2, 1, 3, 2])
    name = c1.selectbox("Dataset", names, key="browse_dataset")
    with c2:
        version = version_picker(name, key="browse_version")
    where = c3.text_input("Filter", key="browse_where", placeholder="resp_chars>=10 and is_dup=false",
                          help="Conditions joined by `and`: field op value, ops = != < <= > >= ~ "
                               "(contains). Fields: columns and score names.")
    search = c4.text_input("Search text", key="browse_search", placeholder="words in the text")
    ok, conditions = call("Filter", conditions_from, where, search)
    if not ok:
        return None
    c5, c6, c7 = st.columns([2, 1, 1])
    sort = c5.selectbox("Sort by", SORTS, key="browse_sort",
                        help="Sorted in DuckDB before paging; `-` = descending. Score names "
                             "work too in the filter box.")
    size = c6.selectbox("Rows per page", [25, 50, 100, 200], index=1, key="browse_size")
    page = int(st.session_state.get("browse_page", 1))
    ok, result = call("Browse", browse, store(), f"{name}@{version}" if version else name,
                      conditions, None if sort == "source order" else sort, page, size)
    if not ok:
        return None
    rows, total = result
    pages = max(1, math.ceil(total / size))
    c7.number_input(f"Page (of {pages:,})", min_value=1, max_value=pages, step=1,
                    key="browse_page")
    st.caption(f"{total:,} rows match · showing {len(rows)} · filtered and paged in DuckDB")
    frame = pd.DataFrame([{k: r.get(k) for k in SHOWN if k in r} for r in rows])
    event = st.dataframe(frame, hide_index=True, width="stretch", height=360,
                         on_select="rerun", selection_mode="single-row", key="browse_table",
                         column_config={
                             "instruction": st.column_config.TextColumn(width="large"),
                             "response": st.column_config.TextColumn(width="large")})
    selected = event.selection.rows if event is not None else []
    return rows[selected[0]] if selected else None
