"""Lineage page: a dataset's version tree with, under each version, the runs trained on it and
their held-out metrics (evals.lineage), as a graph and a table; and from a checkpoint back to
every curation step that shaped its data.

`?dataset=NAME&version=V` opens the page on that dataset (and version's chain).
"""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from curation.datasets import list_datasets
from evals.lineage import checkpoint_lineage, dataset_tree, lineage, lineage_table
from studio.ui.compare_data import labeller
from studio.ui.data import versions_of
from studio.ui.lineage_graph import graph
from studio.ui.session import call, store
from studio.ui.text import literal
from studio.ui.widgets import header
from training.listing import checkpoint_ids, run_names

ALL = "every version (tree)"


header("Lineage", "How each dataset version came to be, which runs trained on it and what they "
       "scored on held-out suites; or, from a checkpoint, every curation step behind its data.")

tab_data, tab_ckpt = st.tabs([":material/account_tree: Dataset", ":material/history: Checkpoint"])
with tab_data:
    names = [d["name"] for d in list_datasets(store())]
    if not names:
        st.info("No datasets yet: import one on the Datasets page.", icon=":material/info:")
    else:
        want_ds = str(st.query_params.get("dataset", ""))
        want_v = str(st.query_params.get("version", ""))
        if want_ds and want_ds not in names:
            st.warning(f"Dataset {literal(want_ds)} is not in this workspace.",
                       icon=":material/warning:")
        cols = st.columns(2)
        dataset = cols[0].selectbox("Dataset", names, key="lineage_dataset",
                                    index=names.index(want_ds) if want_ds in names else 0)
        versions = [ALL] + [v["version"] for v in versions_of(store(), dataset)]
        if want_v and want_ds == dataset and want_v not in versions:
            st.warning(f"{literal(dataset)} has no version {literal(want_v)}.",
                       icon=":material/warning:")
        version = cols[1].selectbox(
            "Version", versions, key=f"lineage_version_{dataset}",
            index=versions.index(want_v) if want_ds == dataset and want_v in versions else 0,
            help="A version shows its chain from the import; the tree shows every version.")
        st.query_params["dataset"] = dataset          # the URL reproduces the view
        if version == ALL:
            st.query_params.pop("version", None)
            ok, data = call("Reading lineage", dataset_tree, store(), dataset)
        else:
            st.query_params["version"] = version
            ok, data = call("Reading lineage", lineage, store(), f"{dataset}@{version}")
        if ok:
            highlight = data.get("ref")
            n_runs = sum(len(s["runs"]) for s in data["steps"])
            st.caption(f"{len(data['steps'])} versions · {n_runs} runs trained on them")
            st.graphviz_chart(graph(data["steps"], highlight), width="stretch")
            st.dataframe(pd.DataFrame(lineage_table(data["steps"])), hide_index=True,
                         width="stretch")

with tab_ckpt:
    ckpts = [c for c in checkpoint_ids(store()) if not c.startswith("base:")]
    if not ckpts:
        st.info("No run checkpoints yet.", icon=":material/info:")
    else:
        ckpt = st.selectbox("Checkpoint", ckpts, index=len(ckpts) - 1,
                            format_func=labeller(run_names(store())),
                            key="lineage_checkpoint")
        ok, back = call("Reading the checkpoint's lineage", checkpoint_lineage, store(), ckpt)
        if ok:
            prov = back["provenance"]
            st.caption(f"Run {literal(back['run_id'])} · step {back['step']} · trained on "
                       f"{literal(prov.get('dataset_ref') or prov.get('data_file'))}")
            for e in back["evals"]:
                st.caption(f"{literal(e['suite'])}: " + ", ".join(
                    f"{m} {v:.3f}" for m, v in e["metrics"].items()
                    if isinstance(v, (int, float))))
            if back["steps"]:
                st.graphviz_chart(graph(back["steps"], prov.get("dataset_ref")), width="stretch")
                st.dataframe(pd.DataFrame(lineage_table(back["steps"])), hide_index=True,
                             width="stretch")
            with st.expander("Provenance (hashes, config, code version)"):
                st.code(json.dumps(prov, indent=2, default=str), language="json")
