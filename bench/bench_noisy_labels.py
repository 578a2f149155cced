"""Noisy-label detectors on the demo's planted noise, over several seeds.

For each seed: the demo's data (25% wrong answers, empty/truncated ones, planted copies), its
dedup + heuristics, then every row scored by each detector and cut by two rules, side by side
on the same scores: `per-task` (the former cut: one 2-Gaussian mixture per task) and
`per-model` (the default of `curation.noisy_labels`: per task and fold model, extreme losses
fenced out of the fit, groups whose losses do not spread left unjudged). Detectors:
  in-sample  loss under the LoRA run trained on the raw data (the demo's former method)
  early      loss under that run's checkpoint at --early-step (small-loss criterion)
  oof-kK     out-of-fold loss from K LoRA runs, each on all folds but one (`training.oof`)
Every run uses the demo's LoRA settings and the seed. Printed: AUROC of the loss for the
planted bad labels, precision and recall of the cut (per-task also at the Bayes boundary), per
seed and as mean (min) over seeds; for per-model also the groups left unjudged and the recall
among the judged rows. A re-run on the same --workspace reuses the stored scores (scores
stored before the fold was recorded get it back from `training.oof.assign_folds`).

    .venv/bin/python bench/bench_noisy_labels.py --seeds 0,1,2 [--folds 2,3] [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curation.datasets import list_datasets, list_versions, show  # noqa: E402
from curation.noisy_labels import HIGH_MODE_POSTERIOR  # noqa: E402
from kernel.store import Store  # noqa: E402
from kernel.workspace import Workspace  # noqa: E402
from studio.demo.data import build_demo_data  # noqa: E402
from studio.demo.denoise import PER_TASK_CUT, losses_of, quality, score_rows  # noqa: E402
from studio.demo.pipeline import (  # noqa: E402
    _dedup_and_heuristics,
    _import,
    _quiet_libraries,
    _set_threads,
    _trainer,
    ensure_base_model,
    train_config,
)
from studio.demo.settings import DemoSettings  # noqa: E402
from training.oof import assign_folds  # noqa: E402

# (cut, posterior): the former per-task mixture at the Bayes boundary and at the default
# posterior, and the per-model cut (the default) at the default posterior.
CUTS = (("per-task", 0.5), ("per-task", HIGH_MODE_POSTERIOR), ("per-model", HIGH_MODE_POSTERIOR))


def cpu_model() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    return next((line.split(":", 1)[1].strip() for line in out.splitlines()
                 if line.startswith("Model name")), "unknown CPU")


def _stored(store: Store, dataset: str, early_step: int) -> dict[str, tuple[str, str]]:
    """Detector -> (scored ref, score name) already in the workspace (a re-run reuses them)."""
    found = {}
    for v in list_versions(store, dataset):
        p = v["params"] if isinstance(v["params"], dict) else json.loads(v["params"] or "{}")
        ref = f"{dataset}@{v['version']}"
        if p.get("scorer") == "oof-loss":
            found[f"oof-k{p['folds']}"] = (ref, "oof_loss")
        elif p.get("scorer") == "perplexity":
            early = str(p.get("model", "")).endswith(f"-step-{early_step}")
            found["early" if early else "in-sample"] = (ref, "resp_loss")
    return found


def one_seed(store: Store, model: Path, settings: DemoSettings, seed: int, folds: list[int],
             log, suite_seed: int) -> list[dict]:
    """Every detector's scores on one seed's data (trained and scored, or reused if stored).
    The data is the demo's for the same seeds: `studio demo --seeds A,B,C` draws every seed's
    suites from seed A, and the training rows follow (their random draws come after)."""
    tag = f"s{seed}" + (f"-suites{suite_seed}" if suite_seed != seed else "")
    dataset = f"bench-{tag}"
    data = build_demo_data(store.workspace.root / "demo-data" / tag, settings.data, seed,
                           suite_seed=suite_seed)
    methods = ["in-sample", "early", *[f"oof-k{k}" for k in folds]]
    stored = _stored(store, dataset, settings.early_step) if dataset in {d["name"] for d in list_datasets(store)} else {}
    if not all(m in stored for m in methods):
        imported = _import(store, data, dataset)
        _, ref = _dedup_and_heuristics(store, imported["raw"], settings)
        raw = _trainer(store, model, settings, seed, lambda line: None)(
            imported["raw"], f"bench-raw-s{seed}", save_steps=settings.early_step)
        early = next(c for c in raw.checkpoints if c.endswith(f"/step-{settings.early_step}"))
        stored = {}
        for method in methods:
            kw = ({"raw_checkpoint": raw.last} if method == "in-sample" else
                  {"early_checkpoint": early} if method == "early" else
                  {"folds": int(method.split("-k")[1])})
            t0 = time.perf_counter()
            scored, name, _ = score_rows(store, ref, method.split("-k")[0], seed=seed,
                                         train_cfg=train_config(settings, model, seed), **kw)
            stored[method] = (scored, name)
            log(f"seed {seed} {method}: scored in {time.perf_counter() - t0:.0f}s")
    out = []
    for method in methods:
        rows = with_folds(store, stored[method][0], losses_of(store, *stored[method]))
        for cut, posterior in CUTS:
            options = PER_TASK_CUT if cut == "per-task" else {}
            q = asdict(quality(method, rows, data.bad_label_ids, seed, posterior=posterior,
                               **options))
            out.append({**q, "seed": seed, "posterior": posterior, "cut": cut,
                        "max_steps": stored_steps(store, stored[method][0])})
    return out


def _params(store: Store, ref: str) -> dict:
    p = show(store, ref)["params"]
    return p if isinstance(p, dict) else json.loads(p or "{}")


def stored_steps(store: Store, ref: str) -> int | None:
    """The LoRA steps of the runs behind a stored out-of-fold score (None for others)."""
    return _params(store, ref).get("max_steps")


def with_folds(store: Store, ref: str, rows: list[dict]) -> list[dict]:
    """Out-of-fold rows stored before `oof_fold` existed: their fold, re-derived (assign_folds
    is seeded and depends on ids and categories only)."""
    p = _params(store, ref)
    if p.get("scorer") != "oof-loss" or all(r.get("fold") is not None for r in rows):
        return rows
    fold_of = assign_folds([{"id": r["id"], "category": r["group"]} for r in rows],
                           int(p["folds"]), int(p["seed"]))
    return [{**r, "fold": fold_of[r["id"]]} for r in rows]


def table(rows: list[dict]) -> str:
    def f(x):
        return "-" if x is None else f"{x:.3f}"

    def cell(r):
        text = f"{f(r['auroc'])} / {f(r['precision'])} / {f(r['recall'])}"
        if r["cut"] == "per-model" and r["unjudged"]:
            text += (f" ({len(r['unjudged'])} groups, {r['n_unjudged']} rows unjudged; "
                     f"R judged {f(r['recall_judged'])})")
        return text
    methods = list(dict.fromkeys(r["method"] for r in rows))
    seeds = sorted({r["seed"] for r in rows})
    lines = ["| detector | " + " | ".join(f"seed {s}: AUROC / P / R" for s in seeds)
             + " | mean AUROC | min P | min R |", "|---|" + "---|" * (len(seeds) + 3)]
    for m in methods:
        mine = [r for r in rows if r["method"] == m]
        cells = [cell(r) for r in mine]
        au = [r["auroc"] for r in mine if r["auroc"] is not None]
        pr = [r["precision"] or 0.0 for r in mine]
        rc = [r["recall"] or 0.0 for r in mine]
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {sum(au) / len(au):.3f} | "
                     f"{min(pr):.3f} | {min(rc):.3f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--folds", default="3", help="comma-separated k values for oof")
    ap.add_argument("--quick", action="store_true", help="the demo's --quick sizes (a smoke run)")
    ap.add_argument("--workspace", default=None, help="reuse a workspace (its base model)")
    ap.add_argument("--json", default=None, help="write the rows here")
    args = ap.parse_args()
    settings = DemoSettings.preset(args.quick)
    _quiet_libraries()
    _set_threads(settings.threads)
    root = Path(args.workspace or tempfile.mkdtemp(prefix="bench-noisy-"))
    store = Store(Workspace.open(root))
    model = ensure_base_model(store.workspace, settings.pretrain_steps, print)
    seeds = [int(s) for s in args.seeds.split(",")]
    folds = [int(k) for k in args.folds.split(",")]
    rows: list[dict] = []
    for seed in seeds:
        rows += one_seed(store, model, settings, seed, folds,
                         lambda line: print(line, flush=True), suite_seed=seeds[0])
    print(f"\nNoisy-label detectors on the demo's planted noise ({'quick' if args.quick else 'full'} "
          f"demo data; {cpu_model()}, torch threads {settings.threads}; {time.strftime('%Y-%m-%d')})")
    steps = sorted({r["max_steps"] for r in rows if r["max_steps"]})
    print(f"(out-of-fold runs of {', '.join(map(str, steps))} LoRA steps, as stored)")
    for cut, posterior in CUTS:
        print(f"\n{cut} cut where the high-loss mode's posterior >= {posterior}"
              + (" (Bayes boundary)" if posterior == 0.5 else "")
              + (" (the default)" if cut == "per-model" else ""))
        print(table([r for r in rows if r["posterior"] == posterior and r["cut"] == cut]))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
