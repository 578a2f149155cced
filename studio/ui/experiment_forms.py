"""The Experiments page's launch forms (a sweep, an ablation) and its group report: thin layers
over the functions `studio sweep` / `studio ablate` call (evals.sweep, evals.ablation), so the
browser queues and reports exactly what the CLI does."""

from __future__ import annotations

import secrets

import pandas as pd
import streamlit as st

from evals import ablation, sweep
from evals.experiments import ACTIVE_STATES
from evals.suites import list_suites
from kernel.errors import StudioError
from studio.ui.data import dataset_overview, versions_of
from studio.ui.session import call, store
from studio.ui.text import literal
from studio.ui.train_form import base_model_labels
from training.config import TrainConfig
from training.groups import get_group, group_runs, list_groups, parse_seeds
from training.listing import base_model_choices

REPORT_KEY = "exp_reports"


def _versions() -> list[str]:
    return [f"{d['name']}@{v['version']}" for d in dataset_overview(store())
            for v in versions_of(store(), d["name"])]


def _shared(key: str) -> tuple[str | None, str | None, int, str]:
    """Base model, suite, max steps and seeds: the settings every run of a group shares."""
    models = base_model_choices(store())
    suites = [s["name"] for s in list_suites(store())]
    c = st.columns(4)
    model = c[0].selectbox("Base model", models, key=f"{key}_model",
                           format_func=base_model_labels(models))
    suite = c[1].selectbox("Held-out suite", suites, key=f"{key}_suite",
                           help="Every run is evaluated on it to compare them.")
    steps = c[2].number_input("Steps per run", min_value=1, value=30, key=f"{key}_steps")
    seeds = c[3].text_input("Seeds", value="0", key=f"{key}_seeds",
                            help="Comma-separated; each config runs once per seed.")
    return model, suite, int(steps), seeds


def _base_config(model: str | None, suite: str | None, steps: int, dataset: str,
                 **settings) -> TrainConfig:
    if not model:
        raise StudioError("no base model in this workspace: import one first (Train page)")
    if not suite:
        raise StudioError("no eval suite in this workspace: make one on the Evaluate page")
    return TrainConfig(base_model=model, dataset=dataset, max_steps=steps, **settings)


def queue_sweep(model, suite, steps, seeds, datasets, grid_text, budget, random_k, name,
                halving: bool = False, eta: int = 2, eval_steps: int = 10) -> dict:
    """The form's values -> evals.sweep.start (what the CLI's detached sweep calls). With
    `halving`, each run evaluates every `eval_steps` steps and stops itself at a rung where it
    is not in the best 1/`eta` (`studio sweep --halving --eta`)."""
    if not datasets:
        raise StudioError("sweep: pick at least one dataset version")
    axes = sweep.parse_grid([line for line in grid_text.splitlines() if line.strip()], datasets)
    spec = sweep.SweepSpec(name=name.strip() or f"sweep-{secrets.token_hex(3)}", suite=suite,
                           axes=axes, seeds=parse_seeds(seeds) if seeds.strip() else [],
                           budget=budget or None, random=random_k or None,
                           halving=halving, eta=eta)
    settings = {"eval_steps": eval_steps} if halving else {}
    return sweep.start(store(), _base_config(model, suite, steps, datasets[0], **settings), spec)


def sweep_form() -> None:
    versions = _versions()
    with st.form("sweep_form"):
        model, suite, steps, seeds = _shared("sweep")
        datasets = st.multiselect("Dataset versions", versions, default=versions[:1],
                                  key="sweep_datasets", help="Each version is one more axis.")
        grid = st.text_area("Grid: one setting per line, values separated by commas",
                            value="lora_r=8,16", key="sweep_grid",
                            help="A TrainConfig field and its values, e.g. lora_r=8,16 or "
                                 "learning_rate=1e-4,3e-4; every combination is one config.")
        c = st.columns(3)
        budget = c[0].number_input("Most runs (0 = no limit)", min_value=0, value=0,
                                   key="sweep_budget")
        random_k = c[1].number_input("Sample this many configs (0 = all)", min_value=0,
                                     value=0, key="sweep_random")
        name = c[2].text_input("Name (optional)", key="sweep_name")
        h = st.columns(3)
        halving = h[0].checkbox("Successive halving", key="sweep_halving",
                                help="Each run stops itself at an eval step where its eval loss "
                                     "is not among the best 1/eta of the runs that got there "
                                     "(ASHA). Halved runs are no winner candidates.")
        eta = h[1].number_input("Keep 1/eta at each rung", min_value=2, value=2,
                                key="sweep_eta")
        eval_steps = h[2].number_input("Rungs: evaluate every N steps", min_value=1, value=10,
                                       key="sweep_eval_steps")
        submitted = st.form_submit_button("Queue sweep", type="primary",
                                          icon=":material/rocket_launch:")
    if submitted:
        ok, started = call("Queuing the sweep", queue_sweep, model, suite, steps, seeds,
                           datasets, grid, int(budget), int(random_k), name, halving,
                           int(eta), int(eval_steps))
        if ok:
            st.success(f"Queued sweep {literal(started['name'])}: {len(started['runs'])} runs.",
                       icon=":material/check:")


def queue_ablation(model, suite, steps, seeds, ref, chosen) -> str:
    """The form's values -> evals.ablation.start (what the CLI's detached ablation calls)."""
    if not ref:
        raise StudioError("ablation: pick a dataset version")
    return ablation.start(store(), ref, _base_config(model, suite, steps, ref), suite,
                          seeds=parse_seeds(seeds) if seeds.strip() else None,
                          steps=chosen or None)


def ablation_form() -> None:
    versions = _versions()
    ref = st.selectbox("Dataset version (the last curation step)", versions, key="abl_ref")
    ok, chain = call("Reading its lineage", ablation.plan, store(), ref) if ref else (True, [])
    names = [s["version"] for s in chain or []]
    with st.form("ablation_form"):
        model, suite, steps, seeds = _shared("abl")
        chosen = st.multiselect("Versions to compare (oldest first)", names, default=names,
                                key="abl_versions", help="One run per version and seed; each "
                                "step is compared with the version before it.")
        submitted = st.form_submit_button("Queue ablation", type="primary",
                                          icon=":material/rocket_launch:", disabled=not ok)
    if submitted:
        ok, ablation_id = call("Queuing the ablation", queue_ablation, model, suite, steps,
                               seeds, ref, chosen)
        if ok:
            st.success(f"Queued ablation {literal(ablation_id)}.", icon=":material/check:")


def finish_group(group: dict) -> dict:
    """The CLI's report: `studio sweep show NAME` / `studio ablation ID` (evaluates, cached)."""
    if group["kind"] == "ablation":
        return ablation.finish(store(), group["id"])
    return sweep.finish(store(), group["id"])


def report_frame(group: dict, rep: dict) -> pd.DataFrame:
    table = (ablation.report_table if group["kind"] == "ablation" else sweep.report_table)(rep)
    return pd.DataFrame(table).astype(str)


def group_report() -> None:
    """Pick a sweep or ablation; once its runs are done, evaluate and show the CLI's report."""
    groups = [g for g in list_groups(store()) if g["kind"] in ("sweep", "ablation")]
    if not groups:
        st.caption("No sweep or ablation yet.")
        return
    group = st.selectbox("Sweep or ablation", groups, key="exp_report_group",
                         format_func=lambda g: f"{g['name']} · {g['kind']} · {len(g['runs'])} runs")
    runs = group_runs(store(), group["id"])
    active = [r for r in runs if r["state"] in ACTIVE_STATES]
    if active:
        st.caption(f"{len(active)} of {len(runs)} runs still queued or running; the report "
                   "comes when they are done.")
    reports = st.session_state.setdefault(REPORT_KEY, {})
    if st.button("Evaluate and report", key="exp_report_go", disabled=bool(active),
                 icon=":material/fact_check:"):
        with st.spinner("Evaluating every run's last checkpoint on the suite"):
            ok, rep = call("Reporting", finish_group, get_group(store(), group["id"]))
        if ok:
            reports[group["id"]] = rep
    rep = reports.get(group["id"])
    if rep is None:
        return
    st.dataframe(report_frame(group, rep), hide_index=True, width="stretch")
    if group["kind"] == "sweep":
        st.markdown(f"{literal(rep['verdict'])} (suite {literal(rep['suite'])}, "
                    f"n = {rep['n_examples']}, metric {literal(rep['metric'])})")
    else:
        st.caption(f"Suite {literal(rep['suite'])}, n = {rep['n_examples']}, "
                   f"seeds {', '.join(map(str, rep['seeds']))}")
