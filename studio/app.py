"""Tuning Studio in the browser: `studio ui` runs `streamlit run studio/app.py`.

This file is the router and frame: page config, the sidebar status bar and the navigation.
Each page lives in `studio/views/` and only lays out widgets over library calls. (Not `pages/`:
Streamlit treats a `pages/` folder beside the entry script as a v1 multipage app and then runs
the pages *instead of* this file, losing the frame and the navigation.) Open a page
directly with `/?page=compare` (what `studio demo` does) or its own path (`/compare`).
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

# The first page is the default and lives at "/" (a default page has no path of its own).
pages = {stem: st.Page(PAGES_DIR / f"{stem}.py", title=title, icon=icon, url_path=stem,
                       default=(i == 0))
         for i, (stem, title, icon) in enumerate(PAGES)}

current = st.navigation(list(pages.values()), position="top")
wanted = str(st.query_params.get("page", "")).lower()
if wanted:  # `/?page=compare`: what `studio demo` and `studio ui --page` open
    del st.query_params["page"]
    if wanted in pages and pages[wanted] is not current:
        st.switch_page(pages[wanted])
sidebar()
current.run()
