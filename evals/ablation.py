"""Which curation step helped? Train one run per version of a lineage, evaluate, attribute.

`start(store, "support@v7", cfg, suite="held", seeds=[0, 1, 2])` walks the lineage from the
import to v7 (or the versions in `steps`), queues one run per version and seed with identical
settings (only `dataset` and `seed` change), and records the ablation. `finish` waits for the
runs, evaluates their final checkpoints on the suite in one backend, and `report` gives, for
each step k vs step k-1, the paired difference averaged over seeds with a 95% CI from a
two-way bootstrap (seeds and examples resampled together, so seed noise widens it), a p-value,
Holm adjustment across steps, a verdict (helped / hurt / no measurable effect) and the
training rows the step removed.
"""

from __future__ import annotations

import dataclasses
import json
import secrets

import numpy as np

from evals.lineage import lineage
from evals.metrics import get_metric
from kernel.errors import NotFoundError, StudioError

ALPHA = 0.05


# --- statistics -----------------------------------------------------------------------------

def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order as given)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def seed_example_bootstrap(diffs, n_boot: int = 4000, seed: int = 0,
                           chunk: int = 250) -> dict:
    """Mean paired difference over a (seeds x examples) array with a 95% CI and a two-sided
    p-value from resampling seeds and examples independently (one seed = examples only)."""
    d = np.asarray(diffs, dtype=float)
    if d.ndim == 1:
        d = d[None, :]
    n_seeds, n = d.shape
    mean = float(d.mean())
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        k = min(chunk, n_boot - start)
        s_idx = rng.integers(0, n_seeds, size=(k, n_seeds, 1))
        r_idx = rng.integers(0, n, size=(k, 1, n))
        boots[start:start + k] = d[s_idx, r_idx].mean(axis=(1, 2))
    low, high = (float(v) for v in np.percentile(boots, [2.5, 97.5]))
    if low == high == mean:
        p = 1.0 if mean == 0 else 1.0 / (n_boot + 1)
    else:  # shifted-null bootstrap, as in evals.stats.paired_compare
        p = float((1 + np.sum(np.abs(boots - mean) >= abs(mean) - 1e-12)) / (n_boot + 1))
    return {"diff": mean, "low": low, "high": high, "p": min(p, 1.0), "n": n,
            "n_seeds": n_seeds}


def verdict(diff: float, p_holm: float, higher_is_better: bool | None) -> str:
    if p_holm >= ALPHA or diff == 0:
        return "no measurable effect"
    better = diff > 0 if higher_is_better is not False else diff < 0
    return "helped" if better else "hurt"


# --- planning and launching -----------------------------------------------------------------

def plan(store, ref: str, steps: list[str] | None = None) -> list[dict]:
    """The versions to train on, oldest first: the whole chain import -> VERSION, or the
    chosen `steps` (version names on that chain; at least two)."""
    chain = lineage(store, ref)["steps"]
    if steps:
        names = [s["version"] for s in chain]
        unknown = [s for s in steps if s not in names]
        if unknown:
            raise StudioError(f"--steps {', '.join(unknown)}: not on the lineage of "
                              f"{ref} ({' -> '.join(names)})")
        chain = [s for s in chain if s["version"] in steps]
    if len(chain) < 2:
        raise StudioError(f"ablation of {ref}: needs at least two versions on its lineage, "
                          f"got {len(chain)}")
    return chain


def start(store, ref: str, cfg, suite: str, seeds: list[int] | None = None,
          steps: list[str] | None = None) -> str:
    """Queue one run per (version, seed) with otherwise identical settings; returns its id."""
    from evals.suites import load_suite
    from training.groups import add_member, record_group
    from training.start_run import launch_training, prepare_training

    load_suite(store, suite)  # an unknown suite fails here, before any run is queued
    versions = plan(store, ref, steps)
    seeds = list(seeds or [cfg.seed])
    configs = [(v, s, dataclasses.replace(cfg, dataset=v["ref"], seed=s,
                                          name=f"ablate {v['ref']} seed {s}"))
               for v in versions for s in seeds]
    for v in versions:  # every version validated before any run is queued
        prepare_training(store, dataclasses.replace(cfg, dataset=v["ref"]))
    ablation_id = f"ablate-{secrets.token_hex(4)}"
    refs = [v["ref"] for v in versions]
    with store.transaction() as con:
        con.execute("INSERT INTO ablations (id, ref, suite, config, seeds, versions) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [ablation_id, versions[-1]["ref"], suite, json.dumps(cfg.to_dict()),
                     json.dumps(seeds), json.dumps(refs)])
        # Also a run group (kind 'ablation', id = the ablation id): listed and cancelled
        # like a sweep's runs (training.groups).
        record_group(con, ablation_id, ablation_id, cfg.to_dict(), kind="ablation",
                     spec={"suite": suite, "versions": refs, "seeds": seeds})
    for v, s, c in configs:
        run_id = launch_training(store, c)
        with store.transaction() as con:
            con.execute("INSERT INTO ablation_runs (ablation_id, version_ref, seed, run_id) "
                        "VALUES (?, ?, ?, ?)", [ablation_id, v["ref"], s, run_id])
            add_member(con, ablation_id, run_id, s, {"dataset": v["ref"]})
    return ablation_id


def get(store, ablation_id: str) -> dict:
    rows = store.query("SELECT * FROM ablations WHERE id = ?", [ablation_id])
    if not rows:
        raise NotFoundError(f"ablation {ablation_id!r} not found")
    ab = rows[0]
    for key in ("config", "seeds", "versions"):
        ab[key] = json.loads(ab[key])
    ab["runs"] = store.query("SELECT version_ref, seed, run_id FROM ablation_runs "
                             "WHERE ablation_id = ? ORDER BY version_ref, seed", [ablation_id])
    return ab


def finish(store, ablation_id: str, backend: str = "hf", backend_options: dict | None = None,
           timeout_s: float | None = None, on_run=None) -> dict:
    """Wait for the ablation's runs, evaluate their final checkpoints together, report."""
    from evals.evaluate import evaluate
    from kernel import jobs

    ab = get(store, ablation_id)
    checkpoints = {}
    for run in ab["runs"]:
        state = jobs.wait(store, run["run_id"], timeout_s=timeout_s)
        if on_run:
            on_run(run, state["state"])
        if state["state"] != "completed" or not state["checkpoints"]:
            raise StudioError(f"ablation {ablation_id}: run {run['run_id']} "
                              f"({run['version_ref']}, seed {run['seed']}) ended "
                              f"{state['state']}: {state.get('error') or 'no checkpoint'}")
        checkpoints[(run["version_ref"], run["seed"])] = state["checkpoints"][-1]["id"]
    result = evaluate(store, ab["suite"], list(checkpoints.values()), backend, backend_options)
    return report(store, ab, result, checkpoints)


def report(store, ab: dict, result, checkpoints: dict) -> dict:
    """Per step vs the previous chosen version: paired difference over seeds and examples."""
    steps = {s["ref"]: s for s in lineage(store, ab["ref"])["steps"]}
    versions, seeds = ab["versions"], ab["seeds"]
    out = {"ablation": ab["id"], "ref": ab["ref"], "suite": ab["suite"], "seeds": seeds,
           "n_examples": len(result.suite.rows)}
    chain = [{**steps[v], "checkpoints": [checkpoints[(v, s)] for s in seeds]} for v in versions]
    scores = {v: [result.scores[checkpoints[(v, s)]] for s in seeds] for v in versions}
    return {**out, **step_differences(chain, scores, list(result.suite.metrics))}


def step_differences(chain: list[dict], scores: dict[str, list[dict]],
                     metrics: list[str]) -> dict:
    """The paired effect of each step of a chain of versions, each vs the one before it.

    `chain`: [{ref, operation, params, n_train, checkpoints}] oldest first (any versions,
    not only one lineage: the demo's last step adds replay rows from another dataset);
    `scores`: ref -> one {metric: per-example scores} per seed, seeds in the same order for
    every ref. Returns {"versions": [...], "steps": [...]}: per metric and step the
    seed-averaged difference, 95% CI over seeds and examples, p, Holm-adjusted p across the
    steps and a verdict.
    """
    out = {"versions": [], "steps": []}
    for v in chain:
        means = {m: float(np.mean([s[m].mean() for s in scores[v["ref"]]])) for m in metrics}
        out["versions"].append({"ref": v["ref"], "n_train": v.get("n_train"), "metrics": means,
                                "checkpoints": v.get("checkpoints", [])})
    for metric in metrics:
        rows = []
        for prev, cur in zip(chain, chain[1:], strict=False):
            d = np.stack([b[metric] - a[metric]
                          for a, b in zip(scores[prev["ref"]], scores[cur["ref"]], strict=True)])
            removed = (None if prev.get("n_train") is None or cur.get("n_train") is None
                       else prev["n_train"] - cur["n_train"])
            rows.append({"metric": metric, "step": cur["ref"], "vs": prev["ref"],
                         "operation": cur.get("operation"), "params": cur.get("params"),
                         "train_rows_removed": removed, **seed_example_bootstrap(d)})
        for row, p_adj in zip(rows, holm([r["p"] for r in rows]), strict=True):
            row["p_holm"] = p_adj
            row["verdict"] = verdict(row["diff"], p_adj, get_metric(metric).higher_is_better)
        out["steps"] += rows
    return out


def attribute_chain(store, suite: str, chain: list[dict], backend="hf",
                    backend_options: dict | None = None) -> dict:
    """Evaluate the checkpoints of an already trained chain (cached) and attribute: the same
    statistics as an ablation, for versions trained by someone else (the demo). Also returns
    the suite's example ids and each version's per-example scores (`per_example`: ref -> one
    {metric: [score per example]} per checkpoint), so chains trained with other seeds on the
    same examples can be pooled (`pool_chains`)."""
    from evals.evaluate import evaluate

    ckpts = [c for v in chain for c in v["checkpoints"]]
    result = evaluate(store, suite, ckpts, backend, backend_options)
    scores = {v["ref"]: [result.scores[c] for c in v["checkpoints"]] for v in chain}
    return {"suite": result.suite.name, "n_examples": len(result.suite.rows),
            "example_ids": [str(r.get("id")) for r in result.suite.rows],
            **step_differences(chain, scores, list(result.suite.metrics)),
            "per_example": {ref: [{m: np.asarray(a, dtype=float).tolist() for m, a in s.items()}
                                  for s in per] for ref, per in scores.items()}}


def pool_chains(reps: list[dict]) -> dict:
    """One attribution over several seeds' chains (`attribute_chain` results, one per seed):
    per step, the seeds x examples array of paired differences, its mean with a 95% CI from
    resampling seeds and examples, Holm across the steps and a verdict, as `step_differences`
    gives for one chain trained with several seeds.

    The chains must be comparable: the same steps (operations) in the same order, scored on
    the same examples with the same metrics; otherwise a StudioError names the difference.
    Returns {"suite", "n_examples", "n_seeds", "versions", "steps"} where each step also has
    `per_seed` (its diff in each seed's own chain) and `train_rows_removed_per_seed`.
    """
    if not reps:
        raise StudioError("pool: no chain to pool")
    first = reps[0]
    ops = [s["operation"] for s in first["steps"]]
    metrics = list(dict.fromkeys(s["metric"] for s in first["steps"]))
    for k, rep in enumerate(reps[1:], 2):
        if [s["operation"] for s in rep["steps"]] != ops:
            raise StudioError(f"pool: chain {k} has other steps than chain 1 "
                              f"({[s['operation'] for s in rep['steps']]} vs {ops})")
        if rep.get("example_ids") != first.get("example_ids") or not first.get("example_ids"):
            raise StudioError(f"pool: chain {k} is not scored on the same examples as chain 1 "
                              f"(suite {rep['suite']} vs {first['suite']})")
        if "per_example" not in rep:
            raise StudioError(f"pool: chain {k} has no per-example scores")
    n_versions = len(first["versions"])
    chain = [{"ref": f"step{i}", "operation": None if i == 0 else
              first["steps"][i - 1]["operation"]} for i in range(n_versions)]
    scores = {f"step{i}": [{m: np.asarray(s[m], dtype=float) for m in metrics}
                           for rep in reps
                           for s in rep["per_example"][rep["versions"][i]["ref"]]]
              for i in range(n_versions)}
    pooled = step_differences(chain, scores, metrics)
    by_metric: dict[str, list[dict]] = {}
    for rep in reps:
        for s in rep["steps"]:
            by_metric.setdefault(s["metric"], []).append(s)
    n_steps = n_versions - 1
    for j, row in enumerate(pooled["steps"]):
        per_seed = [by_metric[row["metric"]][k * n_steps + j % n_steps] for k in range(len(reps))]
        removed = [s["train_rows_removed"] for s in per_seed]
        row.update(step=None, vs=None, per_seed=[s["diff"] for s in per_seed],
                   train_rows_removed_per_seed=removed,
                   train_rows_removed=None if None in removed else
                   int(round(float(np.mean(removed)))))
    for i, v in enumerate(pooled["versions"]):
        v["ref"] = [rep["versions"][i]["ref"] for rep in reps]
        v["operation"] = chain[i]["operation"]
    return {"suite": first["suite"], "n_examples": first["n_examples"], "n_seeds": len(reps),
            **pooled}


def report_table(rep: dict) -> list[dict]:
    """Flat rows for the CLI and the UI: one per (metric, step)."""
    return [{"metric": r["metric"], "step": f"{r['vs'].split('@')[1]} -> {r['step'].split('@')[1]}",
             "operation": r["operation"], "rows removed": r["train_rows_removed"],
             "diff": f"{r['diff']:+.3f}", "95% CI": f"[{r['low']:+.3f}, {r['high']:+.3f}]",
             "p (Holm)": f"{r['p_holm']:.3g}", "verdict": r["verdict"]} for r in rep["steps"]]
