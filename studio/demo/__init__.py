"""`studio demo`: the evaluation-driven loop end to end on a CPU, with this run's real numbers.

    result = run_demo(Path("studio-workspace"), seed=0, quick=False, progress=print)

`settings` says what the demo decides (a dataclass with the full and quick presets),
`pipeline` runs the steps in the order a user would, `data` builds the noisy dataset and
suites, `result` holds the figures, `clock` times and announces each step; `denoise` is the
noisy-label step (detectors), `health` tells a run that failed to learn, `seeds` runs the loop
per seed and judges the demo's claims across seeds (`run_demo_seeds`).
"""

from studio.demo.pipeline import run_demo
from studio.demo.result import DemoResult
from studio.demo.seeds import SeedsResult, run_demo_seeds
from studio.demo.settings import DemoSettings

__all__ = ["DemoResult", "DemoSettings", "SeedsResult", "run_demo", "run_demo_seeds"]
