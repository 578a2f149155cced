"""Job files name their worker module; runs queued before the modules were renamed still run."""

from __future__ import annotations

import importlib

from kernel import job_runner


def test_old_worker_module_names_map_to_modules_with_main():
    assert set(job_runner.RENAMED_WORKERS) == {"training.worker", "evals.worker"}
    for new in job_runner.RENAMED_WORKERS.values():
        assert callable(importlib.import_module(new).main), new
        assert new not in job_runner.RENAMED_WORKERS  # no chains


def test_the_old_names_are_gone():
    for old in job_runner.RENAMED_WORKERS:
        try:
            importlib.import_module(old)
        except ModuleNotFoundError:
            continue
        raise AssertionError(f"{old} still exists: the rename map would hide it")
