"""Announce each demo step with its estimate and the time left, and record how long it took."""

from __future__ import annotations

import time
from collections.abc import Callable

from studio.demo.result import StepTiming

Progress = Callable[[str], None]


class Clock:
    """Prints 'step i/n: title (estimate)' and records how long each step took."""

    def __init__(self, plan: list[tuple[str, float]], progress: Progress):
        self.plan = dict(plan)
        self.order = [name for name, _ in plan]
        self.progress = progress
        self.steps: list[StepTiming] = []
        self.t0 = time.perf_counter()

    def step(self, name: str, detail: str = "") -> Step:
        return Step(self, name, detail)

    def elapsed(self) -> float:
        return round(time.perf_counter() - self.t0, 1)


class Step:
    def __init__(self, clock: Clock, name: str, detail: str):
        self.clock, self.name, self.detail = clock, name, detail

    def __enter__(self) -> Step:
        c = self.clock
        i = c.order.index(self.name) + 1
        left = sum(c.plan[n] for n in c.order[i - 1:])
        c.progress(f"[{i}/{len(c.order)}] {self.name}{': ' + self.detail if self.detail else ''} "
                   f"(~{c.plan[self.name]:.0f}s; ~{left / 60:.1f} min left)")
        self.t = time.perf_counter()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            secs = time.perf_counter() - self.t
            self.clock.steps.append(StepTiming(self.name, round(secs, 1), self.clock.plan[self.name]))
            self.clock.progress(f"      done in {secs:.1f}s")
