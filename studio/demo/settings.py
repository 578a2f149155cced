"""What the demo decides: one frozen dataclass with the full and quick presets, the step
plan with time estimates, and the labels of the four checkpoints it compares."""

from __future__ import annotations

from dataclasses import dataclass, field

from curation.dedup import KEEP_POLICIES
from kernel.errors import StudioError
from studio.demo.data import DemoDataConfig

LABELS = ("base", "raw", "curated", "curated+replay")


@dataclass(frozen=True)
class DemoSettings:
    """What the demo decides; the presets are the full ~10-minute demo and the quick CI one."""

    data: DemoDataConfig = field(default_factory=DemoDataConfig)
    pretrain_steps: int = 1000        # tiny base model pretraining: 1000 steps already solve the
    #                                   general suite (100%), in a third of the default's time
    train_steps: int = 600            # LoRA optimizer steps per run (the same for every run,
    #                                   fold runs included). 300 left runs unconverged (training
    #                                   loss still falling at step 300 in all 18 runs of the
    #                                   measured 3-seed demo), and the tiny model then sometimes
    #                                   missed join_dash: a raw baseline at 5.7%, fold models
    #                                   that could not judge that task's labels
    learning_rate: float = 2e-3       # LoRA peak lr (1e-3 left join_dash unlearnt in 300 steps;
    #                                   3e-3 destroyed everything in the tiny-model note)
    lr_scheduler: str = "constant"    # constant lr, no warm-up: with cosine + warm-up + clipping at
    max_grad_norm: float = 100.0      # 1.0, 300 steps left join_dash unlearnt even on clean rows
    batch_size: int = 16              # examples per step
    lora_r: int = 16                  # LoRA rank (a rank vLLM accepts)
    near_dup_threshold: float = 0.8   # MinHash Jaccard threshold for near duplicates
    dedup_keep: str = "tidy"          # keeper of each duplicate cluster: with 'first', a padded
    #                                   copy that came first in the shuffled file was kept in place
    #                                   of its original, and the filter then flagged it (a rare
    #                                   form has a high loss): 5-8 false positives a seed
    min_response_chars: int = 1       # heuristic: responses shorter than this (stripped) are dropped
    replay_fraction: float = 0.3      # replay rows added to the curated set, as a share of it
    backend: str = "vllm"             # evaluation backend; 'hf' only when vLLM is missing
    claim_temperature: float = 1.0    # curated - raw is judged on held-out exact match of samples
    claim_samples: int = 4            # at this temperature (this many per item), beside greedy:
    #                                   greedy shows a task's mode only, so a raw run whose mode
    #                                   survives 25% wrong labels scores as if it had none, and its
    #                                   spread over seeds (sd/mean 0.62 on 8 development seeds,
    #                                   one below 0) is which runs tip over; sampled: 0.32, all > 0
    detector: str = "oof"             # noisy-label score: oof (out-of-fold), in-sample or early
    oof_folds: int = 3                # k fold runs for the oof detector (same LoRA settings)
    early_step: int = 60              # the early checkpoint the 'early' detector scores with
    min_heldout_gain: float = 0.10    # a run whose held-out exact match beats base by less (or
    #                                   not significantly) "did not learn" (0.05 let a raw run at
    #                                   5.7% pass beside a curated one at 46%); so does one whose
    max_loss_ratio: float = 0.8       # final training loss is above this share of its first
    threads: int = 1                  # torch threads for training/scoring: on shared cores 2 threads
    #                                   were 7x slower per LoRA step than 1 (OpenMP spin-waits)

    def __post_init__(self) -> None:
        for name in ("pretrain_steps", "train_steps", "batch_size", "lora_r", "threads"):
            if getattr(self, name) < 1:
                raise StudioError(f"demo settings: field '{name}' must be >= 1")
        if not 0 < self.near_dup_threshold <= 1:
            raise StudioError("demo settings: field 'near_dup_threshold' must be in (0, 1]")
        if not 0 <= self.replay_fraction <= 1:
            raise StudioError("demo settings: field 'replay_fraction' must be in [0, 1]")
        if self.detector not in ("oof", "in-sample", "early"):
            raise StudioError(f"demo settings: field 'detector' must be oof, in-sample or early, "
                              f"got {self.detector!r}")
        if self.oof_folds < 2:
            raise StudioError("demo settings: field 'oof_folds' must be >= 2")
        if not 0 < self.claim_temperature <= 2:
            raise StudioError("demo settings: field 'claim_temperature' must be in (0, 2]")
        if self.claim_samples < 1:
            raise StudioError("demo settings: field 'claim_samples' must be >= 1")
        if self.dedup_keep not in KEEP_POLICIES:
            raise StudioError(f"demo settings: field 'dedup_keep' must be one of "
                              f"{', '.join(KEEP_POLICIES)}, got {self.dedup_keep!r}")
        if self.backend not in ("vllm", "hf"):
            raise StudioError(f"demo settings: field 'backend' must be vllm or hf, got {self.backend!r}")

    @classmethod
    def preset(cls, quick: bool) -> DemoSettings:
        if quick:
            return cls(data=DemoDataConfig.preset(quick=True), pretrain_steps=150,
                       train_steps=30, oof_folds=2, early_step=10)
        return cls()


# Estimates (seconds) measured on 2 shared CPU cores; printed so users know what to expect.
FULL_PLAN = [("base model", 130.0), ("import", 2.0), ("dedup + heuristics", 3.0),
             ("train raw", 80.0), ("noisy-label filter", 200.0), ("train curated", 60.0),
             ("train curated+replay", 60.0), ("evaluate", 60.0), ("compare", 1.0),
             ("attribute steps", 240.0)]
QUICK_PLAN = [("base model", 25.0), ("import", 2.0), ("dedup + heuristics", 3.0),
              ("train raw", 15.0), ("noisy-label filter", 30.0), ("train curated", 15.0),
              ("train curated+replay", 15.0), ("evaluate", 90.0), ("compare", 1.0),
              ("attribute steps", 90.0)]
