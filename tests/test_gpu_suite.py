"""bench/gpu_suite.py is prepared for a GPU it has never seen: its --dry-run runs every step
(both model shapes, plain vs packed training, the QLoRA gate, HF vs vLLM generation) on CPU at
toy sizes, so a lent GPU window is not lost to a script that does not start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_suite_dry_run_runs_every_step(tmp_path):
    out = tmp_path / "suite.json"
    env = {**os.environ, "PYTHONPATH": str(REPO), "STUDIO_TORCH_THREADS": "1",
           "VLLM_CPU_KVCACHE_SPACE": "1"}
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_suite.py"), "--dry-run",
                           "--out", str(out)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    report = json.loads(out.read_text())
    assert report["dry_run"] and report["sizes"]["toy"]
    for name in ("train/smollm2-135m", "train/qwen2-0.5b"):
        step = report[name]
        assert "failed" not in step, step
        runs = {r["run"]: r for r in step["runs"]}
        assert set(runs) == {"baseline_padded", "studio_packed"}
        assert all(r["tokens"] > 0 and r["tokens_per_s"] > 0 for r in runs.values())
        assert step["tokens_per_s_ratio"] > 0
    assert report["train/qwen2-0.5b-qlora4bit"] == {"skipped": "needs CUDA"}
    gen = report["generate/smollm2-135m"]
    assert "failed" not in gen, gen
    assert gen["models"] == 4 and gen["hf"]["tokens"] > 0
    vllm = gen["vllm"]
    assert "skipped" in vllm or (vllm["tokens"] > 0 and gen["vllm_over_hf"] > 0)
    for line in ("train/smollm2-135m:", "train/qwen2-0.5b:", "generate/smollm2-135m:"):
        assert line in proc.stdout  # every figure printed as its step ends
