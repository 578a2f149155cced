"""`studio demo --seeds 0,1,2`: the demo's loop once per seed, its claims judged across seeds.

Why: one seed proves little (a fine-tune's outcome moves with its seed as much as with many data
changes), and a figure that holds on one seed only is not evidence. Every seed builds its own
noisy training data, runs and statistics; the held-out and general suites are the first seed's
for all, so the runs of every seed are scored on the same examples and curated - raw can be
pooled with the two-level (seeds x examples) CI of `evals.stats.grouped_compare`.

Targets, checked on what the runs gave (never adjusted):
- curated beats raw: the pooled CI of curated - raw on the held-out suite, sampled
  (`DemoSettings.claim_temperature`, `claim_samples`), lies above 0; greedy is pooled and
  printed beside it. Sampled was chosen on development seeds 6-11, 14 and 15 (README,
  measurements S and T), before seeds 0-2 were run with it: greedy exact match sees a task's
  mode only, and its spread over seeds is whether a raw run's mode tips;
- the noisy-label filter has recall >= 0.8 at precision >= 0.9 on every seed;
- replay reduces forgetting on every seed: curated+replay - curated on the general suite has
  its 95% CI above 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from evals.stats import grouped_compare
from kernel.errors import StudioError
from kernel.machine import describe
from studio.demo.attribution import pool_attribution
from studio.demo.clock import Progress
from studio.demo.pipeline import run_demo
from studio.demo.result import DemoResult
from studio.demo.settings import DemoSettings

MIN_RECALL = 0.8
MIN_PRECISION = 0.9


@dataclass
class SeedsResult:
    seeds: list[int]
    per_seed: list[dict]            # one DemoResult.to_dict() per seed
    pooled: dict[str, dict]         # 'curated_vs_raw' / 'replay_effect' -> GroupedResult dict
    targets: dict[str, dict]        # name -> {met, detail, per_seed?}
    total_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    attribution_pooled: dict = field(default_factory=dict)  # role -> steps over seeds x examples
    machine: dict = field(default_factory=describe)  # the CPU these figures came from

    def to_dict(self) -> dict:
        return asdict(self)


def _matrix(results: list[DemoResult], role: str, label: str) -> np.ndarray:
    return np.array([r.per_example[role][label] for r in results], dtype=float)


def pool(results: list[DemoResult], seeds: list[int]) -> dict[str, dict]:
    """curated - raw (held-out) and curated+replay - curated (general), pooled over seeds.
    Paired by seed: a seed's runs all train on that seed's own noisy data, so the per-seed
    difference is the unit (the seeds' shared luck cancels in it)."""
    out = {
        "curated_vs_raw": grouped_compare(_matrix(results, "task", "raw"),
                                          _matrix(results, "task", "curated"),
                                          seeds, seeds, paired_seeds=True, binary=True).to_dict(),
        "replay_effect": grouped_compare(_matrix(results, "general", "curated"),
                                         _matrix(results, "general", "curated+replay"),
                                         seeds, seeds, paired_seeds=True, binary=True).to_dict(),
    }
    if all("task_sampled" in r.per_example for r in results):
        # an item's score is the share of its samples that are right: not binary
        out["curated_vs_raw_sampled"] = grouped_compare(
            _matrix(results, "task_sampled", "raw"), _matrix(results, "task_sampled", "curated"),
            seeds, seeds, paired_seeds=True).to_dict()
    return out


def judge(per_seed: list[dict], pooled: dict[str, dict]) -> dict[str, dict]:
    """Whether each of the three targets is met, with the figures that decide it."""
    metric = "curated_vs_raw_sampled" if "curated_vs_raw_sampled" in pooled else "curated_vs_raw"
    c, g = pooled[metric], pooled["curated_vs_raw"]
    greedy = ("" if metric == "curated_vs_raw" else
              f" (greedy, reported only: {g['diff']:+.3f} [{g['ci_low']:+.3f}, {g['ci_high']:+.3f}])")
    filters = [{"seed": r["seed"], "precision": r["curation"]["detector"]["precision"],
                "recall": r["curation"]["detector"]["recall"]} for r in per_seed]
    for f in filters:
        f["met"] = (f["precision"] or 0) >= MIN_PRECISION and (f["recall"] or 0) >= MIN_RECALL
    replay = [{"seed": r["seed"], "diff": r["replay_effect"]["diff"],
               "ci_low": r["replay_effect"]["ci_low"], "met": r["replay_effect"]["ci_low"] > 0}
              for r in per_seed]
    return {
        "curated_beats_raw": {
            "met": c["ci_low"] > 0, "metric": metric,
            "detail": f"pooled curated - raw{', sampled,' if metric != 'curated_vs_raw' else ''} "
                      f"{c['diff']:+.3f} [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}] must lie "
                      f"above 0{greedy}"},
        "noisy_label_filter": {
            "met": all(f["met"] for f in filters), "per_seed": filters,
            "detail": f"recall >= {MIN_RECALL} at precision >= {MIN_PRECISION} on every seed"},
        "replay_reduces_forgetting": {
            "met": all(r["met"] for r in replay), "per_seed": replay,
            "detail": "curated+replay - curated on the general suite, CI above 0 on every seed"},
    }


def run_demo_seeds(workspace: str | Path, seeds: list[int], quick: bool = False,
                   progress: Progress = print, settings: DemoSettings | None = None
                   ) -> SeedsResult:
    """The demo once per seed in one workspace (the base model is built once), then pooled."""
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise StudioError(f"demo --seeds needs at least 2 distinct seeds, got {seeds}")
    results = []
    for k, seed in enumerate(seeds):
        progress(f"=== seed {seed} ({k + 1}/{len(seeds)}) ===")
        results.append(run_demo(workspace, seed=seed, quick=quick, progress=progress,
                                settings=settings, suite_seed=seeds[0]))
    per_seed = [r.to_dict() for r in results]
    pooled = pool(results, seeds)
    notes = [f"seed {r.seed}: {n}" for r in results for n in r.notes]
    return SeedsResult(seeds=list(seeds), per_seed=per_seed, pooled=pooled,
                       targets=judge(per_seed, pooled),
                       total_s=sum(r.total_s for r in results), notes=notes,
                       attribution_pooled=pool_attribution([r.attribution for r in results]))
