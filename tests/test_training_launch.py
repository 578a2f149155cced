"""The multi-GPU launch command (built, not run: no GPUs here) and the job runner's device lock."""

from __future__ import annotations

import sys

import pytest

from kernel.errors import StudioError
from training.multi_gpu import build_launch_command


def test_torchrun_command(tmp_path):
    cmd = build_launch_command(tmp_path / "run", 4)
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert cmd[cmd.index("--nproc_per_node") + 1] == "4" and "--standalone" in cmd
    assert cmd[-3:] == ["-m", "training.train_worker", str((tmp_path / "run").resolve())]


def test_accelerate_fsdp_command(tmp_path):
    cmd = build_launch_command(tmp_path, 8, launcher="accelerate", strategy="fsdp", main_port=29555)
    assert cmd[1:3] == ["-m", "accelerate.commands.launch"]
    assert cmd[cmd.index("--num_processes") + 1] == "8"
    assert "--multi_gpu" in cmd and "--use_fsdp" in cmd
    assert cmd[cmd.index("--main_process_port") + 1] == "29555"
    single = build_launch_command(tmp_path, 1, launcher="accelerate")
    assert "--multi_gpu" not in single


@pytest.mark.slow
def test_launch_modules_exist_and_parse_the_flags():
    """The launchers named in the command accept its flags (checked with --help, no GPU needed)."""
    import subprocess

    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--help"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "--nproc_per_node" in out.stdout and "--standalone" in out.stdout


@pytest.mark.parametrize("kwargs,message", [
    ({"n_gpus": 0}, "n_gpus"),
    ({"n_gpus": 2, "launcher": "mpirun"}, "launcher"),
    ({"n_gpus": 2, "strategy": "fsdp"}, "accelerate"),
])
def test_bad_launch_arguments(tmp_path, kwargs, message):
    with pytest.raises(StudioError, match=message):
        build_launch_command(tmp_path, **kwargs)
