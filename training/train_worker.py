"""The training job's worker: `main(run_dir)` trains from the run folder (no database access).

Started by `kernel.job_runner` (queueing, status, cancel and crash reporting happen there);
on resume (`job.json` "resume": true) the Trainer continues from the newest `hf/checkpoint-<N>`.
"""

from __future__ import annotations

from kernel.status import read_job


def main(run_dir: str) -> None:
    from training.trainer import run

    job = read_job(run_dir)
    summary = run(run_dir, resume=bool(job.get("resume")))
    print(f"[train] done: {summary}", flush=True)


if __name__ == "__main__":  # torchrun / accelerate launch start one of these per GPU
    import sys

    main(sys.argv[1])
