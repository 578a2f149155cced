"""Importable helpers behind the Streamlit pages: the pages only lay out widgets.

Everything here is UI plumbing (workspace choice, error boxes, charts, diffs, background
progress); the features themselves live in `curation/`, `training/` and `evals/`.
"""
