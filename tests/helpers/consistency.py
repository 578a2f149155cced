"""Compare two backends' greedy outputs token by token and report every difference.

Why: vLLM and HF should agree for the same greedy settings in float32; when they do not, the
user must see where (prompt, first diverging position, both continuations), not a silent
average.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from evals.backends import Backend
from evals.types import ModelRef, SamplingConfig


@dataclass
class BackendAgreement:
    checkpoint: str
    n: int
    n_equal: int
    differences: list[dict] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.n_equal / self.n if self.n else 1.0


def _first_divergence(a: list[int], b: list[int]) -> int:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return min(len(a), len(b))


def agreement(a: Backend, b: Backend, models: list[ModelRef], prompts: list[str],
              sampling: SamplingConfig | None = None) -> list[BackendAgreement]:
    """Per model: how many prompts give identical token ids (up to and including EOS)."""
    sampling = sampling or SamplingConfig()
    report = []
    for m in models:
        out_a = a.generate(m, prompts, sampling)
        out_b = b.generate(m, prompts, sampling)
        rep = BackendAgreement(m.name, len(prompts), 0)
        for p, ca, cb in zip(prompts, out_a, out_b, strict=True):
            ta, tb = ca[0].token_ids, cb[0].token_ids
            if ta == tb:
                rep.n_equal += 1
            else:
                rep.differences.append({
                    "prompt": p, "position": _first_divergence(ta, tb),
                    a.name: ca[0].text, b.name: cb[0].text,
                    f"{a.name}_tokens": ta, f"{b.name}_tokens": tb})
        report.append(rep)
    return report
