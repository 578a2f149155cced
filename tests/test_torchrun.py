"""Data-parallel training for real: the same run folder under `torchrun --nproc_per_node 2` on
CPU (gloo), against one process on the same global batch; and the FSDP accelerate config.

The ranks run `tests.torchrun_probe`, the training worker with the studio's file writes
recorded per rank, so the test sees which rank wrote status, metrics and checkpoints.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from training.config import TrainConfig
from training.data import export_split
from training.multi_gpu import build_launch_command
from training.start_run import prepare_training
from training.trainer import CONFIG_FILE

REPO = Path(__file__).resolve().parents[1]
FSDP_CONFIG = REPO / "training" / "accelerate" / "fsdp.yaml"
STEPS = 4
WORDS = ["apple", "river", "stone", "cloud", "tiger", "lemon", "piano", "rocket", "violet",
         "garden", "candle", "mirror", "orange", "forest", "silver", "dragon"]


def prepare_run(store, tiny_model: Path, tmp_path: Path, name: str, batch_size: int) -> Path:
    data = tmp_path / "rows.jsonl"
    if not data.exists():
        data.write_text("".join(json.dumps({"instruction": f"say {w} twice",
                                            "response": f"{w} {w}"}) + "\n" for w in WORDS))
    cfg = TrainConfig(base_model=str(tiny_model), data_file=str(data), max_steps=STEPS,
                      batch_size=batch_size, lora_dropout=0.0, eval_fraction=0, packing=False,
                      logging_steps=1, save_steps=STEPS, seed=0, learning_rate=1e-3,
                      max_seq_len=64, warmup_ratio=0.0, lr_scheduler="constant")
    resolved, train, evals = prepare_training(store, cfg)
    run_dir = tmp_path / name
    run_dir.mkdir()
    resolved.to_yaml(run_dir / CONFIG_FILE)
    export_split(run_dir, train, evals)
    return run_dir


def run(cmd: list[str], run_dir: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "STUDIO_TORCH_THREADS": "1",
           "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    (run_dir / "launch.log").write_text(out.stdout + out.stderr)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]


def losses(run_dir: Path) -> list[tuple[int, float]]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in records if "loss" in r]


@pytest.mark.slow
def test_torchrun_two_ranks_match_one_process_and_only_rank0_writes(store, tiny_model, tmp_path):
    ddp_dir = prepare_run(store, tiny_model, tmp_path, "ddp", batch_size=4)       # 2 x 4
    single_dir = prepare_run(store, tiny_model, tmp_path, "single", batch_size=8)  # 1 x 8
    cmd = build_launch_command(ddp_dir, 2)
    assert cmd[-3:-1] == ["-m", "training.train_worker"]
    cmd[-3:-1] = ["-m", "tests.torchrun_probe"]
    run(cmd, ddp_dir)
    run([sys.executable, "-m", "tests.torchrun_probe", str(single_dir)], single_dir)

    ranks = {r: json.loads((ddp_dir / "probe" / f"rank{r}.json").read_text()) for r in (0, 1)}
    # both ranks trained every step of a 2-process group
    assert all(p["world_size"] == 2 and p["summary"]["global_step"] == STEPS
               for p in ranks.values())
    # only rank 0 wrote the studio's files
    assert ranks[1]["writes"] == []
    assert {"status", "metrics", "checkpoint"} <= set(ranks[0]["writes"])
    assert sorted(p.name for p in (ddp_dir / "checkpoints").iterdir()) == [f"step-{STEPS}"]
    assert (ddp_dir / "checkpoints" / f"step-{STEPS}" / "adapter_model.safetensors").exists()
    assert json.loads((ddp_dir / "status.json").read_text())["step"] == STEPS
    ddp, single = losses(ddp_dir), losses(single_dir)
    assert [s for s, _ in ddp] == list(range(1, STEPS + 1))  # one line per step, not one per rank
    assert [s for s, _ in single] == [s for s, _ in ddp]
    # same weights and the same 8 examples at step 1; then the same updates up to float noise
    print("ddp   ", [round(v, 5) for _, v in ddp])
    print("single", [round(v, 5) for _, v in single])
    assert ddp[0][1] == pytest.approx(single[0][1], rel=1e-3)
    assert [v for _, v in ddp] == pytest.approx([v for _, v in single], rel=2e-2)
    assert ddp[-1][1] < ddp[0][1]  # and it learnt


def test_fsdp_accelerate_config_is_valid_for_accelerate():
    """The shipped FSDP config parses with accelerate's own classes, turns into the launch
    environment accelerate would set, and builds its FSDP plugin (no GPU needed for that)."""
    from accelerate.commands.config.config_args import ClusterConfig
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin
    from accelerate.utils.launch import prepare_multi_gpu_env

    cfg = ClusterConfig.from_yaml_file(str(FSDP_CONFIG))  # unknown keys raise here
    assert cfg.distributed_type == DistributedType.FSDP and cfg.mixed_precision == "bf16"
    args = launch_command_parser().parse_args(
        ["--config_file", str(FSDP_CONFIG), "-m", "training.train_worker", "RUN_DIR"])
    args, _, _ = _validate_launch_command(args)
    assert args.use_fsdp and args.num_processes == 8
    env = prepare_multi_gpu_env(args)
    assert env["FSDP_VERSION"] == "2" and env["FSDP_STATE_DICT_TYPE"] == "FULL_STATE_DICT"
    saved = dict(os.environ)
    try:
        os.environ.update(env)
        plugin = FullyShardedDataParallelPlugin()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert plugin.fsdp_version == 2 and plugin.transformer_cls_names_to_wrap == ["LlamaDecoderLayer"]
    assert plugin.cpu_ram_efficient_loading and plugin.activation_checkpointing is False
