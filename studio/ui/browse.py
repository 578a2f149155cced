"""The paged table browser: filters and paging go to DuckDB through `curation` browse.

Only one page of rows ever reaches the browser, so a 1M-row dataset scrolls as fast as a
small one. The filter box takes the same condition syntax as the browse command's `--where`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd
import streamlit as st

from curation.browse import browse
from curation.filters import Condition, parse_where
from studio.ui.session import call, store
from studio.ui.widgets import linked_ref_pickers

# What a reviewer reads first; scores follow these, then the bookkeeping columns.
FIRST = ["id", "instruction", "response", "category"]
LAST = ["is_dup", "dup_cluster", "split", "resp_chars", "inst_chars", "n_turns"]
SORTS = ["source order", "id", "resp_chars", "-resp_chars", "inst_chars", "-inst_chars",
         "category", "n_turns"]


@dataclass
class Browsed:
    """What the browser shows: the version, its page of rows, the rows the user ticked."""
    dataset: str
    version: str | None
    rows: list[dict] = field(default_factory=list)
    selected: list[dict] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"{self.dataset}@{self.version}" if self.version else self.dataset


def conditions_from(text: str, search: str):
    """The user's filter string (curation's syntax) plus a text search, as Conditions.

    The search box becomes a `text ~ value` Condition object directly, so quotes in what the
    user types never need escaping.
    """
    out = list(parse_where(text))
    if search.strip():
        out.append(Condition("text", "~", search.strip()))
    return out


def table(rows: list[dict]) -> pd.DataFrame:
    """Rows as a table: id, texts and category first, then one column per score, then the
    duplicate flag, cluster, split and lengths."""
    scores = sorted({name for r in rows for name in (r.get("scores") or {})})
    return pd.DataFrame([{**{k: r.get(k) for k in FIRST},
                          **{f"score: {s}": (r.get("scores") or {}).get(s) for s in scores},
                          **{k: r.get(k) for k in LAST}} for r in rows],
                        columns=[*FIRST, *(f"score: {s}" for s in scores), *LAST])


def browser(names: list[str]) -> Browsed | None:
    """Dataset/version pickers (kept in the URL), filters, one page of rows with a tick box
    per row; returns what is shown and selected, or None on a bad filter."""
    c1, c2, c3, c4 = st.columns([2, 1, 3, 2])
    name, version = linked_ref_pickers(names, "browse_dataset", "browse_version", (c1, c2))
    where = c3.text_input("Filter", key="browse_where", placeholder="resp_chars>=10 and is_dup=false",
                          help="Conditions joined by `and`: field op value, ops = != < <= > >= ~ "
                               "(contains). Fields: columns and score names.")
    search = c4.text_input("Search text", key="browse_search", placeholder="words in the text")
    ok, conditions = call("Filter", conditions_from, where, search)
    if not ok:
        return None
    shown = Browsed(name, version)
    c5, c6, c7 = st.columns([2, 1, 1])
    sort = c5.selectbox("Sort by", SORTS, key="browse_sort",
                        help="Sorted in DuckDB before paging; `-` = descending. Score names "
                             "work too in the filter box.")
    size = c6.selectbox("Rows per page", [25, 50, 100, 200], index=1, key="browse_size")
    page = int(st.session_state.get("browse_page", 1))
    ok, result = call("Browse", browse, store(), shown.ref, conditions,
                      None if sort == "source order" else sort, page, size)
    if not ok:
        return None
    shown.rows, total = result
    pages = max(1, math.ceil(total / size))
    c7.number_input(f"Page (of {pages:,})", min_value=1, max_value=pages, step=1,
                    key="browse_page")
    st.caption(f"{total:,} rows match · showing {len(shown.rows)} · filtered and paged in "
               "DuckDB · tick rows to see one in detail, edit it or exclude them")
    event = st.dataframe(table(shown.rows), hide_index=True, width="stretch", height=360,
                         on_select="rerun", selection_mode="multi-row",
                         key=f"browse_table:{shown.ref}",  # a new version starts unticked
                         column_config={
                             "instruction": st.column_config.TextColumn(width="large"),
                             "response": st.column_config.TextColumn(width="large"),
                             "is_dup": st.column_config.CheckboxColumn("duplicate")})
    picked = event.selection.rows if event is not None else []
    shown.selected = [shown.rows[i] for i in picked if i < len(shown.rows)]
    return shown
