"""Training throughput: the studio's packed LoRA run vs a plain Trainer + peft baseline.

Both runs use the same model, LoRA config, rows, labels, batch size and steps, in this one
bench run (each in a fresh child process, so memory peaks are comparable); the baseline pads
each batch to its longest row (DataCollatorForSeq2Seq), the studio run packs the batch
padding-free (`training.collate.PackedCollator`). Printed: real (non-pad)
tokens per second of training and peak memory (CUDA max_memory_allocated on GPU; on CPU the
peak RSS growth during the run, sampled every 5 ms), and the ratios.

    .venv/bin/python bench/bench_train.py                       # tiny model on CPU (~1-2 min)
    .venv/bin/python bench/bench_train.py --model qwen0.5b --steps 30 --batch-size 16   # GPU

`--model qwen0.5b` builds a Qwen2-0.5B-shaped model from its config with random weights (no hub
access needed; throughput does not depend on the weights). Goal on GPU: >= 1.5x tokens/s with
no more memory.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training import synthetic  # noqa: E402


def bench_rows(n: int, seed: int = 0) -> list[dict]:
    """Short synthetic tasks mixed with longer copy tasks: the length spread of real SFT data."""
    rng = random.Random(seed)
    rows = synthetic.generate(list(synthetic.FAMILIES), n // 9 + 1, seed)[: n * 3 // 4]
    while len(rows) < n:
        words = [rng.choice(synthetic.WORDS) for _ in range(rng.randint(10, 60))]
        rows.append({"instruction": "copy this text: " + " ".join(words), "response": " ".join(words)})
    rng.shuffle(rows)
    return rows


class PeakMemory:
    """Peak memory of a block: CUDA allocator peak, or sampled RSS growth on CPU."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self.peak_mb = 0.0

    @staticmethod
    def _rss_mb() -> float:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    def __enter__(self) -> PeakMemory:
        import torch

        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            self._start = torch.cuda.memory_allocated() / 2**20
            return self
        self._start, self._stop = self._rss_mb(), threading.Event()
        self._max = self._start

        def sample() -> None:
            while not self._stop.wait(0.005):
                self._max = max(self._max, self._rss_mb())

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        import torch

        if self.cuda:
            self.peak_mb = torch.cuda.max_memory_allocated() / 2**20 - self._start
        else:
            self._stop.set()
            self._thread.join()
            self.peak_mb = self._max - self._start


def make_model_dir(kind: str, workdir: Path) -> Path:
    """The tiny model (built briefly if no path given) or a random Qwen2-0.5B-shaped model."""
    from training.tiny_model import TinyModelConfig, build_tiny_model

    tiny = build_tiny_model(workdir / "tiny", TinyModelConfig(pretrain_steps=20, n_examples=640))
    if kind == "tiny":
        return tiny
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tok = AutoTokenizer.from_pretrained(tiny)
    cfg = Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864,
                      num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                      max_position_embeddings=4096, tie_word_embeddings=True,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    out = workdir / "qwen0.5b"
    Qwen2ForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def baseline_trainer(cfg, train_rows, out_dir: Path):
    """Plain transformers Trainer + peft, padded batches: what one writes without the studio."""
    from transformers import AutoTokenizer, DataCollatorForSeq2Seq, Trainer

    from training.collate import TokenCounter
    from training.trainer import encode_rows, lora_model, pick_precision, training_arguments
    from training.trainer import load_base_model as load

    tok = AutoTokenizer.from_pretrained(cfg.base_model)
    data = encode_rows(tok, train_rows, cfg)
    model = lora_model(load(cfg, pick_precision(cfg)), cfg)
    counter = TokenCounter().attach(model)
    args = training_arguments(cfg, out_dir, len(data), False, pick_precision(cfg))
    args.save_strategy = "no"
    collator = DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100)
    return Trainer(model=model, args=args, train_dataset=data, data_collator=collator), counter


def studio_trainer(cfg, train_rows, out_dir: Path):
    from training.trainer import build_trainer

    trainer = build_trainer(cfg, out_dir, train_rows, [], write_files=False)
    trainer.args.save_strategy = "no"
    callback = next(c for c in trainer.callback_handler.callbacks if hasattr(c, "counter"))
    return trainer, callback.counter


def measure(name: str, cfg, rows, workdir: Path, cuda: bool) -> dict:
    import torch

    from training.trainer import torch_threads

    torch.set_num_threads(torch_threads())  # same threads for both runs ($STUDIO_TORCH_THREADS)
    factory = {"baseline_padded": baseline_trainer, "studio_packed": studio_trainer}[name]
    trainer, counter = factory(cfg, rows, workdir / name)
    if cuda:
        torch.cuda.synchronize()
    with PeakMemory(cuda) as mem:
        t0 = time.perf_counter()
        trainer.train()
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
    result = {"run": name, "tokens": counter.tokens, "seconds": round(seconds, 2),
              "tokens_per_s": round(counter.tokens / seconds, 1), "peak_mem_mb": round(mem.peak_mb, 1)}
    del trainer
    if cuda:
        torch.cuda.empty_cache()
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["tiny", "qwen0.5b"], default="tiny")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rows", type=int, default=800)
    parser.add_argument("--out", type=Path, default=None, help="Also write the figures as JSON here.")
    args = parser.parse_args(argv)

    import torch

    from training.config import TrainConfig
    from training.preflight import preflight

    cuda = torch.cuda.is_available()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        model_dir = make_model_dir(args.model, workdir)
        rows = bench_rows(args.rows)
        base = dict(base_model=str(model_dir), data_file="-", max_steps=args.steps,
                    batch_size=args.batch_size, eval_fraction=0.0, lora_dropout=0.0,
                    max_seq_len=256, logging_steps=10, save_steps=10**6, seed=0)
        plain = preflight(TrainConfig(**base, packing=False))
        packed = preflight(TrainConfig(**base, packing=True))
        # One fresh child process per run (spawned from this one): on CPU, RSS never shrinks,
        # so a second run in the same process would hide its peak behind the first one's.
        ctx = multiprocessing.get_context("spawn")
        results = []
        for name, cfg in (("baseline_padded", plain), ("studio_packed", packed)):
            with ctx.Pool(1) as pool:
                results.append(pool.apply(measure, (name, cfg, rows, workdir, cuda)))
    b, s = results
    summary = {"device": torch.cuda.get_device_name() if cuda else f"cpu x{torch.get_num_threads()}",
               "model": args.model, "steps": args.steps, "batch_size": args.batch_size,
               "results": results,
               "tokens_per_s_ratio": round(s["tokens_per_s"] / b["tokens_per_s"], 2),
               "peak_mem_ratio": round(s["peak_mem_mb"] / b["peak_mem_mb"], 2) if b["peak_mem_mb"] > 0 else None}
    print(f"device {summary['device']}  model {args.model}  steps {args.steps}  batch {args.batch_size}")
    for r in results:
        print(f"  {r['run']:<16} {r['tokens_per_s']:>10.1f} tok/s  {r['seconds']:>7.2f} s  "
              f"peak mem +{r['peak_mem_mb']:.1f} MB  ({r['tokens']} tokens)")
    print(f"  ratio studio/baseline: tokens/s x{summary['tokens_per_s_ratio']}  "
          f"peak memory x{summary['peak_mem_ratio']}")
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
