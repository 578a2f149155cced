"""Data-parallel launch on several GPUs: the command that runs one training worker per GPU.

How multi-GPU training works here: the run folder is prepared exactly as for one device
(`training.start_run`), then instead of one worker process, `torchrun` (or `accelerate launch`)
starts N copies of `python -m training.train_worker RUN_DIR`, one per GPU. transformers' Trainer reads
the LOCAL_RANK/WORLD_SIZE variables they set and wraps the LoRA model in DDP (or FSDP with
`strategy="fsdp"`); the global batch is batch_size x grad_accum x N. Only rank 0 writes metrics,
status and checkpoints (`state.is_world_process_zero`). Run it by hand:

    studio train --config run.yaml            # prepares runs/<id>/ and starts a 1-device job
    torchrun --standalone --nproc_per_node 4 -m training.train_worker runs/<id>   # or the command below

`build_launch_command(run_dir, n_gpus)` returns that argv; a multi-GPU job should own the
machine (the per-GPU locks of `kernel.job_runner` cover single-device jobs).
"""

from __future__ import annotations

import sys
from pathlib import Path

from kernel.errors import StudioError

LAUNCHERS = ("torchrun", "accelerate")
STRATEGIES = ("ddp", "fsdp")


def build_launch_command(run_dir: str | Path, n_gpus: int, launcher: str = "torchrun",
                         strategy: str = "ddp", mixed_precision: str = "bf16",
                         main_port: int | None = None) -> list[str]:
    """argv that starts `n_gpus` data-parallel training workers on the prepared `run_dir`."""
    if n_gpus < 1:
        raise StudioError(f"n_gpus must be >= 1, got {n_gpus}")
    if launcher not in LAUNCHERS:
        raise StudioError(f"launcher {launcher!r} is not one of {list(LAUNCHERS)}")
    if strategy not in STRATEGIES:
        raise StudioError(f"strategy {strategy!r} is not one of {list(STRATEGIES)}")
    if launcher == "torchrun" and strategy == "fsdp":
        raise StudioError("FSDP is configured through accelerate: use launcher='accelerate'")
    target = ["-m", "training.train_worker", str(Path(run_dir).resolve())]
    if launcher == "torchrun":
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
               "--nproc_per_node", str(n_gpus)]
        return cmd + target
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1",
           "--num_processes", str(n_gpus), "--mixed_precision", mixed_precision]
    if n_gpus > 1:
        cmd.append("--multi_gpu")
    if strategy == "fsdp":
        cmd += ["--use_fsdp", "--fsdp_sharding_strategy", "FULL_SHARD"]
    if main_port is not None:
        cmd += ["--main_process_port", str(main_port)]
    return cmd + target
