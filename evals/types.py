"""The value types every evals module shares: which model, how to sample, what came out.

`ModelRef` is `training.checkpoints.ModelRef` (re-exported: training owns checkpoints); the
sampling config is part of the generation cache key, so every field that changes outputs is here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from kernel.errors import StudioError
from training.checkpoints import ModelRef  # noqa: F401  (one model reference, owned by training)


@dataclass(frozen=True)
class SamplingConfig:
    """Decoding settings. Defaults are greedy, 64 new tokens, one sample, seed 0."""

    max_new_tokens: int = 64          # upper bound on generated tokens per sample
    temperature: float = 0.0          # 0 = greedy
    top_p: float = 1.0                # nucleus sampling mass (ignored when greedy)
    n: int = 1                        # samples per prompt; each is cached with its sample index
    seed: int = 0                     # base seed; sample i of a prompt: `seed_for(prompt, i)`
    stop: tuple[str, ...] = field(default_factory=tuple)  # extra stop strings

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise StudioError(f"sampling: field 'max_new_tokens' must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise StudioError(f"sampling: field 'temperature' must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise StudioError(f"sampling: field 'top_p' must be in (0, 1], got {self.top_p}")
        if self.n < 1:
            raise StudioError(f"sampling: field 'n' must be >= 1, got {self.n}")
        if self.temperature == 0 and self.n > 1:
            raise StudioError("sampling: n > 1 needs temperature > 0 (greedy samples are identical)")
        object.__setattr__(self, "stop", tuple(self.stop))

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def seed_for(self, prompt: str, sample: int) -> int:
        """The seed of sample `sample` of `prompt`: the base seed, the sample index and the
        prompt's text hashed together, so each prompt draws its own random numbers, the same in
        every run. One seed for every prompt (`seed + i`, before) gave every prompt the same
        draws: the tiny demo model's sampled `join_dash` answers came out as the same wrong
        token in all 100 prompts, and samples correlated across a suite's rows make its
        per-row statistics look surer than they are."""
        digest = hashlib.sha256(f"{self.seed}\x1f{sample}\x1f{prompt}".encode()).digest()
        return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF

    def to_dict(self) -> dict:
        d = asdict(self)
        d["stop"] = list(self.stop)
        return d

    def canonical(self) -> str:
        """The JSON that goes into the cache key (sorted keys, no whitespace)."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict | None) -> SamplingConfig:
        data = dict(data or {})
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise StudioError(f"sampling: unknown field(s) {sorted(unknown)}")
        return cls(**data)


@dataclass
class Generation:
    """One sample for one prompt from one model."""

    prompt_hash: str
    sample_idx: int
    output: str
    n_tokens: int
    finish_reason: str | None = None
