"""Every GPU figure in ONE call (~8 min on one GPU): GPU time comes rarely and in short windows.

    python bench/gpu_suite.py                 # on a GPU machine; prints every figure, --out FILE.json
    python bench/gpu_suite.py --dry-run       # every step on CPU at toy sizes (tests/test_gpu_suite.py)

Steps (each printed as it finishes; a step that cannot run says why and the suite goes on):
1. Training tokens/s and peak memory, studio (packed, padding-free) vs plain Trainer + peft
   (padded), same rows/LoRA/batch/steps, bf16 where the GPU supports it, on a SmolLM2-135M-shaped
   and a Qwen2-0.5B-shaped model built from their configs with random weights (throughput does
   not depend on the weights; `--smollm2 FOLDER` uses the real imported model instead).
   Reuses `bench/bench_train.py` (`measure`: one fresh process per run, so peaks compare).
2. QLoRA 4-bit (studio packed run on the Qwen2-shaped model) if bitsandbytes and CUDA are there.
3. Generation tokens/s, HF `generate` vs vLLM, base + 3 LoRA adapters on 500 prompts (HF is the
   baseline; vLLM is skipped, and says so, where it is not installed, as on the lent GPU boxes).
Goals (issue 16): studio >= 2x plain Trainer+peft tokens/s at no more memory; vLLM >= 5x HF.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import bench_train  # noqa: E402  (bench/bench_train.py: rows, measure, the tiny tokenizer)


@dataclass(frozen=True)
class Sizes:
    steps: int
    batch_size: int
    rows: int
    max_seq_len: int
    prompts: int
    new_tokens: int
    toy: bool


FULL = Sizes(steps=30, batch_size=16, rows=1200, max_seq_len=512, prompts=500, new_tokens=64,
             toy=False)
DRY = Sizes(steps=2, batch_size=4, rows=32, max_seq_len=64, prompts=6, new_tokens=8, toy=True)

# name -> (config class, full-size shape); --dry-run shrinks depth and width, keeps the family.
SHAPES = {
    "smollm2-135m": ("LlamaConfig", dict(hidden_size=576, intermediate_size=1536,
                                         num_hidden_layers=30, num_attention_heads=9,
                                         num_key_value_heads=3, vocab_size=49152,
                                         max_position_embeddings=8192)),
    "qwen2-0.5b": ("Qwen2Config", dict(hidden_size=896, intermediate_size=4864,
                                       num_hidden_layers=24, num_attention_heads=14,
                                       num_key_value_heads=2, vocab_size=151936,
                                       max_position_embeddings=4096)),
}
TOY = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
           num_key_value_heads=2, max_position_embeddings=256)  # head_dim 32: vLLM CPU runs it


def build_model(name: str, workdir: Path, tokenizer_dir: Path, toy: bool) -> Path:
    """A random-weight model of `name`'s shape with the tiny model's tokenizer (HF layout)."""
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cls_name, shape = SHAPES[name]
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    shape = {**shape, **TOY, "vocab_size": len(tok)} if toy else shape
    cfg = getattr(transformers, cls_name)(**shape, tie_word_embeddings=True,
                                          eos_token_id=tok.eos_token_id,
                                          pad_token_id=tok.pad_token_id)
    out = workdir / name
    AutoModelForCausalLM.from_config(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def train_step(model_dir: Path, sizes: Sizes, workdir: Path, cuda: bool,
               qlora: bool = False) -> list[dict]:
    """bench_train.measure for plain vs packed (or packed QLoRA only), each in a fresh process."""
    from training.config import TrainConfig
    from training.preflight import preflight

    rows = bench_train.bench_rows(sizes.rows)
    base = dict(base_model=str(model_dir), data_file="-", max_steps=sizes.steps,
                batch_size=sizes.batch_size, eval_fraction=0.0, lora_dropout=0.0,
                max_seq_len=sizes.max_seq_len, logging_steps=10, save_steps=10**6, seed=0,
                precision="auto", qlora_4bit=qlora, learning_rate=2e-4)
    runs = [("studio_packed", True)] if qlora else [("baseline_padded", False),
                                                    ("studio_packed", True)]
    ctx = multiprocessing.get_context("spawn")
    out = []
    for name, packing in runs:
        cfg = preflight(TrainConfig(**base, packing=packing))
        with ctx.Pool(1) as pool:
            out.append(pool.apply(bench_train.measure, (name, cfg, rows, workdir, cuda)))
    return out


def generation_step(model_dir: Path, sizes: Sizes, workdir: Path) -> dict:
    """HF generate vs vLLM on base + 3 adapters; vLLM skipped (and said so) when absent."""
    from transformers import AutoTokenizer

    from evals.backends.hf import HFBackend
    from evals.prompts import render_prompts
    from evals.types import ModelRef, SamplingConfig
    from tests.helpers.fixtures import make_lora_adapter
    from training.checkpoints import resolve as resolve_model

    tok = AutoTokenizer.from_pretrained(model_dir)
    base = ModelRef(base_model=str(model_dir), name=f"base:{model_dir.name}")
    adapters = []
    for i in range(3):
        folder = make_lora_adapter(model_dir, workdir / f"lora{i}", seed=i, rank=8, scale=0.2)
        # the base model's own template and EOS (the fixture writes the tiny model's)
        (folder / "meta.json").write_text(json.dumps({
            "step": 0, "base_model": str(model_dir), "chat_template": tok.chat_template,
            "eos_token": tok.eos_token}))
        adapters.append(resolve_model(None, str(folder)))
    models = [base, *adapters]
    words = ["apple", "river", "stone", "cloud", "tiger", "lemon", "piano", "rocket"]
    rows = [{"messages": [{"role": "user", "content": f"copy this text: {words[i % 8]} {i}"}]}
            for i in range(sizes.prompts)]
    prompts = render_prompts(base, rows)
    sampling = SamplingConfig(max_new_tokens=sizes.new_tokens)

    def throughput(backend) -> dict:
        t0, tokens = time.perf_counter(), 0
        for m in models:
            tokens += sum(c[0].n_tokens for c in backend.generate(m, prompts, sampling))
        seconds = time.perf_counter() - t0
        return {"tokens": tokens, "seconds": round(seconds, 2),
                "tokens_per_s": round(tokens / seconds, 1)}

    hf = HFBackend(batch_size=32)
    result = {"prompts": len(prompts), "models": len(models), "hf": throughput(hf)}
    hf.close()
    try:
        import vllm  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - absent or broken: say so and go on
        result["vllm"] = {"skipped": f"vllm not importable here ({type(exc).__name__})"}
        return result
    from evals.backends.vllm import VLLMBackend

    t0 = time.perf_counter()
    engine = VLLMBackend(models, max_model_len=256 if sizes.toy else 1024)
    start_s = time.perf_counter() - t0
    try:
        result["vllm"] = {**throughput(engine), "engine_start_s": round(start_s, 1)}
    finally:
        engine.close()
    result["vllm_over_hf"] = round(result["vllm"]["tokens_per_s"] / result["hf"]["tokens_per_s"], 2)
    return result


def device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    try:
        import subprocess

        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        cpu = next(line.split(":", 1)[1].strip() for line in out.splitlines()
                   if line.startswith("Model name"))
    except (OSError, StopIteration):
        cpu = "unknown CPU"
    return f"CPU ({cpu}, {torch.get_num_threads()} threads)"


def score_step(folder: Path, sizes: Sizes) -> dict:
    """Perplexity + IFD scoring rows/s, batched vs batch 1 (bench/bench_model_scores.py)."""
    import bench_model_scores

    rows = bench_model_scores.real_conversations(max(8, sizes.prompts // 4))
    batched = bench_model_scores.measure(str(folder), rows, 8)
    single = bench_model_scores.measure(str(folder), rows, 1)
    return {"batched": batched, "baseline_batch1": single,
            "speedup": round(batched["rows_per_s"] / single["rows_per_s"], 2)}


def run_step(name: str, fn, report: dict) -> None:
    t0 = time.perf_counter()
    try:
        report[name] = fn()
    except Exception as exc:  # noqa: BLE001 - one failing step must not cost the other figures
        traceback.print_exc()
        report[name] = {"failed": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
    print(f"[{time.perf_counter() - t0:6.1f} s] {name}: {json.dumps(report[name])}", flush=True)


def ratios(results: list[dict]) -> dict:
    by = {r["run"]: r for r in results}
    if {"baseline_padded", "studio_packed"} - set(by):
        return {}
    b, s = by["baseline_padded"], by["studio_packed"]
    return {"tokens_per_s_ratio": round(s["tokens_per_s"] / b["tokens_per_s"], 2),
            "peak_mem_ratio": round(s["peak_mem_mb"] / b["peak_mem_mb"], 2)
            if b["peak_mem_mb"] > 0 else None}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="Every step on CPU at toy sizes.")
    parser.add_argument("--smollm2", default=None, help="Real SmolLM2 folder (default: random weights).")
    parser.add_argument("--out", type=Path, default=None, help="Also write the figures as JSON.")
    args = parser.parse_args(argv)

    import torch

    from training.tiny_model import TinyModelConfig, build_tiny_model

    cuda = torch.cuda.is_available() and not args.dry_run
    sizes = DRY if args.dry_run or not cuda else FULL
    report: dict = {"device": device_name(), "dry_run": args.dry_run,
                    "sizes": sizes.__dict__, "torch": torch.__version__}
    if not cuda and not args.dry_run:
        print("no CUDA GPU here: running the toy sizes (use --dry-run to say so)", flush=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        tok_dir = build_tiny_model(workdir / "tiny", TinyModelConfig(pretrain_steps=0,
                                                                     n_examples=640))
        models = {name: (Path(args.smollm2) if name == "smollm2-135m" and args.smollm2
                         else build_model(name, workdir, tok_dir, sizes.toy)) for name in SHAPES}
        for name, folder in models.items():
            def step(folder=folder):
                results = train_step(folder, sizes, workdir, cuda)
                return {"runs": results, **ratios(results)}
            run_step(f"train/{name}", step, report)
        try:
            import bitsandbytes  # noqa: F401
            have_bnb = True
        except Exception:  # noqa: BLE001
            have_bnb = False
        if cuda and have_bnb:
            run_step("train/qwen2-0.5b-qlora4bit",
                     lambda: {"runs": train_step(models["qwen2-0.5b"], sizes, workdir, cuda,
                                                 qlora=True)}, report)
        else:
            report["train/qwen2-0.5b-qlora4bit"] = {
                "skipped": "needs CUDA" if not cuda else "bitsandbytes not installed"}
            print(f"qlora: {report['train/qwen2-0.5b-qlora4bit']}", flush=True)
        run_step("score/smollm2-135m", lambda: score_step(models["smollm2-135m"], sizes), report)
        run_step("generate/smollm2-135m",
                 lambda: generation_step(models["smollm2-135m"], sizes, workdir), report)
    report["total_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
