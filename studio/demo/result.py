"""The demo's figures: every number comes from the runs of one invocation."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from kernel.machine import describe


@dataclass
class StepTiming:
    name: str
    seconds: float
    estimate_s: float


@dataclass
class Score:
    """Mean of a checkpoint on a suite with its 95% CI and n."""

    mean: float
    low: float
    high: float
    n: int


@dataclass
class Paired:
    """candidate - baseline on the same examples: paired bootstrap CI and McNemar p."""

    baseline: str
    candidate: str
    baseline_mean: float
    candidate_mean: float
    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    # task family (the suite's category) -> {n, baseline, candidate, diff}: a gain of 0.33 on a
    # three-task suite is usually one task learnt by one run and not the other
    by_category: dict[str, dict] = field(default_factory=dict)


@dataclass
class DemoResult:
    workspace: str
    seed: int
    quick: bool
    backend: str
    base_model: str
    dataset: str
    versions: dict[str, str]           # 'raw', 'heuristic', 'curated', 'replay' -> dataset refs
    lineage: list[str]                 # curated version's chain back to the import
    curation: dict                     # counts per step + precision/recall vs what was planted
    checkpoints: dict[str, str]        # label -> checkpoint id
    suites: dict[str, str]             # 'task' / 'general' -> suite name
    scores: dict[str, dict[str, Score]]  # suite role -> label -> Score
    curated_vs_raw: Paired             # on the held-out task suite, greedy
    forgetting: dict[str, Paired]      # label -> (run - base) on the general suite
    replay_effect: Paired              # curated+replay - curated on the general suite
    # suite role -> evals.ablation.step_differences: each curation step vs the one before
    attribution: dict = field(default_factory=dict)
    learning: dict[str, dict] = field(default_factory=dict)  # label -> health.LearningCheck
    # curated - raw on the held-out suite sampled (DemoSettings.claim_temperature and
    # claim_samples; an item scores the share of its samples that are right): the claim's metric
    curated_vs_raw_sampled: Paired | None = None
    steps: list[StepTiming] = field(default_factory=list)
    total_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    machine: dict = field(default_factory=describe)  # the CPU these figures came from
    # suite role -> label -> per-example exact match (suite order): for pooling seeds; not printed
    per_example: dict[str, dict[str, list[float]]] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("per_example")
        return out
