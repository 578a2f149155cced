"""Tuning Studio in the browser: `studio ui` runs `streamlit run studio/app.py`.

This file is the router and frame: page config, the sidebar status bar and the navigation.
Each page lives in `studio/views/` and only lays out widgets over library calls. (Not `pages/`:
Streamlit treats a `pages/` folder beside the entry script as a v1 multipage app and then runs
the pages *instead of* this file, losing the frame and the navigation.) Open a page
directly with `/?page=compare` (what `studio demo` does) or its own path (`/compare`); `/`
opens `/datasets`. Datasets and Curate keep `?dataset=X&version=vN` in the URL.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from studio.ui.status import sidebar

PAGES_DIR = Path(__file__).resolve().parent / "views"
# (file stem, title, icon): also the names `studio ui --page NAME` accepts.
PAGES = [
    ("datasets", "Datasets", ":material/table_view:"),
    ("curate", "Curate", ":material/cleaning_services:"),
    ("train", "Train", ":material/model_training:"),
    ("evaluate", "Evaluate", ":material/fact_check:"),
    ("compare", "Compare", ":material/compare_arrows:"),
    ("experiments", "Experiments", ":material/science:"),
    ("playground", "Playground", ":material/chat:"),
    ("lineage", "Lineage", ":material/account_tree:"),
]

st.set_page_config(page_title="Tuning Studio", page_icon=":material/tune:", layout="wide",
                   initial_sidebar_state="expanded")

# Every listed page has its own path (`/datasets` too); "/" is a hidden page that opens the
# first one, keeping the query (a default page would have no path of its own).
pages = {stem: st.Page(PAGES_DIR / f"{stem}.py", title=title, icon=icon, url_path=stem)
         for stem, title, icon in PAGES}


def home() -> None:
    """What "/" shows: the first page, at its own path."""
    st.switch_page(next(iter(pages.values())), query_params=st.query_params.to_dict())


current = st.navigation([st.Page(home, title="Home", url_path="home", default=True,
                                 visibility="hidden"), *pages.values()], position="top")
wanted = str(st.query_params.get("page", "")).lower()
if wanted:  # `/?page=compare`: what `studio demo` and `studio ui --page` open
    del st.query_params["page"]
    if wanted in pages and pages[wanted] is not current:
        st.switch_page(pages[wanted], query_params=st.query_params.to_dict())
sidebar()
current.run()
