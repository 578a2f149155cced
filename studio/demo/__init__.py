"""`studio demo`: the evaluation-driven loop end to end on a CPU, with this run's real numbers.

    result = run_demo(Path("studio-workspace"), seed=0, quick=False, progress=print)

`settings` says what the demo decides (a dataclass with the full and quick presets),
`pipeline` runs the steps in the order a user would, `data` builds the noisy dataset and
suites, `result` holds the figures, `clock` times and announces each step.
"""

from studio.demo.pipeline import run_demo
from studio.demo.result import DemoResult
from studio.demo.settings import DemoSettings

__all__ = ["DemoResult", "DemoSettings", "run_demo"]
