"""Bench: generation throughput (new tokens/s), vLLM vs HF transformers, same checkpoints/prompts.

    .venv/bin/python bench/bench_generation.py [--prompts 64] [--tokens 32] [--batch 16]

Both backends run in this one process on the tiny model (base + 2 LoRA adapters), greedy,
float32; HF is the baseline, vLLM's figure is printed beside it as a ratio. vLLM engine start-up
is reported separately (paid once per evaluation). On a GPU machine without vllm (the lent ones
have none) only the HF figure is measured: `--hf-only`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the repo's own packages and tests.helpers (the fixture adapters)


def tiny_model() -> Path:
    from training.tiny_model import TinyModelConfig, build_tiny_model

    cfg = TinyModelConfig(pretrain_steps=150)
    path = REPO / ".cache" / f"tiny-model-test-{cfg.fingerprint()}"
    if not (path / "config.json").exists():
        build_tiny_model(path, cfg)
    return path


def prompts_for(model, n: int) -> list[str]:
    from evals.prompts import render_prompts

    words = ["apple", "river", "stone", "cloud", "tiger", "lemon", "piano", "rocket"]
    rows = [{"messages": [{"role": "user", "content": f"{t} {words[i % 8]} {i}"}]}
            for i, t in zip(range(n), ["reverse", "upper", "count", "add"] * n, strict=False)]
    return render_prompts(model, rows)


def throughput(backend, models, prompts, sampling) -> tuple[float, int, float]:
    t = time.perf_counter()
    n_tok = 0
    for m in models:
        n_tok += sum(c[0].n_tokens for c in backend.generate(m, prompts, sampling))
    dt = time.perf_counter() - t
    return n_tok / dt, n_tok, dt


def main() -> None:
    import torch

    from evals.backends.hf import HFBackend
    from evals.types import ModelRef, SamplingConfig
    from tests.helpers.fixtures import make_lora_adapter
    from training.checkpoints import resolve as resolve_model

    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--hf-only", action="store_true")
    args = ap.parse_args()
    base_path = tiny_model()
    tmp = REPO / ".cache" / "bench-adapters-s05"
    adapters = [tmp / f"a{i}" for i in (1, 2)]
    for i, a in enumerate(adapters, 1):
        if not (a / "adapter_config.json").exists():
            make_lora_adapter(base_path, a, seed=i, scale=0.5)   # long, garbled outputs
    base = ModelRef(base_model=str(base_path), name=f"base:{base_path}")
    models = [base] + [resolve_model(None, str(a)) for a in adapters]
    prompts = prompts_for(base, args.prompts)
    sampling = SamplingConfig(max_new_tokens=args.tokens)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"device {device}; {len(models)} checkpoints x {len(prompts)} prompts, greedy, "
          f"max {args.tokens} new tokens, batch {args.batch}, torch threads {torch.get_num_threads()}")

    hf = HFBackend(batch_size=args.batch)
    throughput(hf, models[:1], prompts[:2], sampling)          # warm-up (load, first kernels)
    hf_tps, hf_tok, hf_s = throughput(hf, models, prompts, sampling)
    print(f"HF transformers ({device}):  {hf_tps:9.1f} tok/s  ({hf_tok} tokens in {hf_s:.2f} s; "
          f"generation threads {hf.threads or torch.get_num_threads()})")
    hf.close()
    if args.hf_only:
        return
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from evals.backends.vllm import VLLMBackend

    t = time.perf_counter()
    engine = VLLMBackend(models, max_model_len=128, batch_size=args.batch)
    start_s = time.perf_counter() - t
    throughput(engine, models[:1], prompts[:2], sampling)
    v_tps, v_tok, v_s = throughput(engine, models, prompts, sampling)
    print(f"vLLM ({'cpu build' if device == 'cpu' else device}):       {v_tps:9.1f} tok/s  "
          f"({v_tok} tokens in {v_s:.2f} s; engine start {start_s:.1f} s, once for all checkpoints)")
    print(f"ratio vLLM/HF: {v_tps / hf_tps:.2f}x (generation only); including engine start: "
          f"{(v_tok / (v_s + start_s)) / hf_tps:.2f}x")
    engine.close()


if __name__ == "__main__":
    main()
