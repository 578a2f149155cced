"""Evaluate checkpoints on a suite: cached generation, per-example scores, stored summaries.

`evaluate(store, "suite", ["base:/m", "run1/step-100"])` starts one backend for all the
checkpoints that miss the cache, scores every sample with the suite's metrics (outside any DB
connection) and writes scores + a summary row per checkpoint in one transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from evals.backends import Backend, identity_text
from evals.generate import GenerationResult, generate_cached, write_generations
from evals.metrics import MetricSpec, get_metric
from evals.prompts import adapter_hash
from evals.stats import mean_ci
from evals.suites import Suite, load_suite
from evals.types import ModelRef
from kernel.store import Store
from training.checkpoints import resolve as resolve_model
from training.provenance import summary_for as provenance_summary


@dataclass
class EvalResult:
    suite: Suite
    models: list[ModelRef]
    generation: GenerationResult
    # checkpoint -> metric spec -> per-row score (mean over samples), in suite row order
    scores: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    summary: dict[str, dict[str, dict]] = field(default_factory=dict)
    contamination: dict[str, list[dict]] = field(default_factory=dict)

    def outputs(self, checkpoint: str, row_id: str) -> list[str]:
        return self.generation.outputs[checkpoint][row_id]


def score_outputs(suite: Suite, outputs: dict[str, list[str]]) -> tuple[dict[str, np.ndarray], list]:
    """Per-row mean score per metric, plus per-sample records (row_id, sample, metric, value)."""
    specs = [MetricSpec(s) for s in suite.metrics]
    per_row = {s.spec: np.zeros(len(suite.rows)) for s in specs}
    records = []
    for i, row in enumerate(suite.rows):
        samples = outputs[row["id"]]
        for spec in specs:
            vals = [spec.score(out, row) for out in samples]
            per_row[spec.spec][i] = float(np.mean(vals))
            records += [(row["id"], s, spec.spec, v) for s, v in enumerate(vals)]
    return per_row, records


def _json_or_null(value) -> str | None:
    return None if value is None else json.dumps(value)


def groups_of(suite: Suite) -> list[str] | None:
    return [r["group"] for r in suite.rows] if suite.group_by else None


def evaluate(store: Store, suite: str | Suite, checkpoints: list[str | ModelRef],
             backend: str | Backend = "hf", backend_options: dict | None = None,
             check_contamination: bool = False) -> EvalResult:
    suite = load_suite(store, suite) if isinstance(suite, str) else suite
    models = [c if isinstance(c, ModelRef) else resolve_model(store, c) for c in checkpoints]
    # Score an empty answer first: a metric that cannot score a row (no reference) fails
    # here, before any generation is paid for.
    score_outputs(suite, {r["id"]: [""] for r in suite.rows})
    contamination = {}
    if check_contamination:
        from evals.contamination import check_models

        contamination = check_models(store, suite, models)
    gen = generate_cached(store, models, suite.rows, suite.sampling, backend, backend_options,
                          write=False)
    result = EvalResult(suite, models, gen, contamination=contamination)
    groups = groups_of(suite)
    writes = []
    for m in models:
        per_row, records = score_outputs(suite, gen.outputs[m.name])
        result.scores[m.name] = per_row
        result.summary[m.name] = {k: mean_ci(v, groups, get_metric(k).binary).to_dict()
                                  for k, v in per_row.items()}
        keys = gen.keys[m.name]
        writes.append((m, [[suite.name, m.name, rid, s, metric, v, keys[rid][s]]
                           for rid, s, metric, v in records]))
    # New generations, scores and run summaries land together in one transaction.
    with store.transaction() as con:
        write_generations(con, gen.records)
        for m, rows in writes:
            con.execute("DELETE FROM eval_scores WHERE suite = ? AND checkpoint = ?",
                        [suite.name, m.name])
            con.executemany("INSERT INTO eval_scores (suite, checkpoint, row_id, sample_idx, "
                            "metric, value, cache_key) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            mine = {k for ks in gen.keys[m.name].values() for k in ks}
            n_here = sum(len(v) for v in gen.keys[m.name].values())
            n_new = sum(1 for r in gen.records if r["cache_key"] in mine)
            con.execute(
                "INSERT INTO eval_runs (suite, checkpoint, model, adapter_hash, backend, "
                "backend_config, n_generated, n_cached, summary, contamination, provenance) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [suite.name, m.name, m.base_model, adapter_hash(m.adapter_path),
                 (gen.identity or {}).get("backend") or gen.backend,
                 identity_text(gen.identity) if gen.identity else None, n_new, n_here - n_new,
                 json.dumps({k: v["mean"] for k, v in result.summary[m.name].items()}),
                 json.dumps(contamination.get(m.name)) if contamination else None,
                 _json_or_null(provenance_summary(m.adapter_path))])
    return result
