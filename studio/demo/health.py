"""Did a run learn? A run that failed to learn is no fair baseline, and the demo must say so.

Why: on one machine the raw run barely learned the task (held-out exact match near the base
model's), so "curated beats raw" held for the wrong reason and the loss under that run could not
tell wrong labels from right ones. Two signs, either one enough: the held-out score is at base
level (gain over base below a margin, or not significant), or the training loss did not fall.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LearningCheck:
    """One run's verdict and the figures behind it."""

    label: str
    learned: bool
    heldout_gain: float | None      # run - base, held-out task suite
    gain_ci_low: float | None
    first_loss: float | None        # first and last logged training losses
    last_loss: float | None
    problems: list[str] = field(default_factory=list)


def check_learning(label: str, losses: list[float], gain: float | None = None,
                   gain_ci_low: float | None = None, min_gain: float = 0.10,
                   max_loss_ratio: float = 0.8) -> LearningCheck:
    """`losses`: the run's logged training losses in step order; `gain`, `gain_ci_low`: its
    held-out difference from base with the CI's lower end (None when not evaluated)."""
    problems = []
    first = losses[0] if losses else None
    last = sum(losses[-3:]) / len(losses[-3:]) if losses else None  # the last few, not one batch
    if first is None:
        problems.append("no training loss was logged")
    elif last > max_loss_ratio * first:
        problems.append(f"training loss did not fall ({first:.3f} -> {last:.3f}, more than "
                        f"{max_loss_ratio:.0%} of where it started)")
    if gain is not None and (gain < min_gain or (gain_ci_low is not None and gain_ci_low <= 0)):
        problems.append(f"held-out exact match is at base level ({gain:+.3f} vs base"
                        + (f", CI low {gain_ci_low:+.3f}" if gain_ci_low is not None else "")
                        + f"; needs >= {min_gain:+.2f} and a CI above 0)")
    return LearningCheck(label=label, learned=not problems, heldout_gain=gain,
                         gain_ci_low=gain_ci_low, first_loss=first, last_loss=last,
                         problems=problems)
