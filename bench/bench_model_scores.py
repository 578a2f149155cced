"""Perplexity / IFD scoring speed (rows/s) on a real model: batched vs one row at a time.

    .venv/bin/python bench/bench_model_scores.py --model FOLDER [--rows 32] [--batch-size 8]

Scores real alpaca rows (`../shared/data/real/llamafactory_alpaca_en_demo.json`) with
`curation.model_scores.response_losses` (two forward passes per row: with and without the
instruction, for IFD) and prints rows/s for the batched path beside the batch-1 baseline
measured in the same run, with the device. `--model` defaults to SmolLM2-135M-Instruct imported
offline (`studio model import smollm2-135m-instruct`), the real model of the tests.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

DATA = REPO.parent / "shared" / "data" / "real" / "llamafactory_alpaca_en_demo.json"


def real_conversations(n: int) -> list[list[dict]]:
    rows = json.loads(DATA.read_text())[:n]
    return [[{"role": "user", "content": (r["instruction"] + "\n" + r.get("input", "")).strip()},
             {"role": "assistant", "content": r["output"]}] for r in rows]


def measure(model: str, conversations: list[list[dict]], batch_size: int,
            max_length: int = 256) -> dict:
    """rows/s of perplexity + IFD scoring at one batch size (model load excluded)."""
    import numpy as np

    from curation.model_scores import ModelScoreConfig, response_losses

    cfg = ModelScoreConfig(model=model, batch_size=batch_size, max_length=max_length)
    response_losses(cfg, conversations[:batch_size])  # warm-up: load, first kernels
    t0 = time.perf_counter()
    cond, alone = response_losses(cfg, conversations)
    seconds = time.perf_counter() - t0
    ifd = cond / alone
    return {"batch_size": batch_size, "rows": len(conversations), "seconds": round(seconds, 2),
            "rows_per_s": round(len(conversations) / seconds, 2),
            "finite": int(np.isfinite(ifd).sum()), "median_ifd": round(float(np.nanmedian(ifd)), 3)}


def default_model() -> str:
    """The imported SmolLM2 folder (importing it once into a temporary workspace if needed)."""
    cached = sorted((REPO / ".cache").glob("smollm2-135m-instruct-*"))
    if cached and (cached[-1] / "config.json").exists():
        return str(cached[-1])
    from kernel.store import Store
    from training.models import import_model

    ws = Path(tempfile.mkdtemp(prefix="bench-scores-"))
    return str(import_model(Store(ws), "smollm2-135m-instruct").path)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args(argv)

    import torch
    from gpu_suite import device_name

    model = args.model or default_model()
    conversations = real_conversations(args.rows)
    batched = measure(model, conversations, args.batch_size)
    single = measure(model, conversations, 1)
    report = {"device": device_name(), "model": model, "batched": batched, "baseline_batch1": single,
              "speedup": round(batched["rows_per_s"] / single["rows_per_s"], 2),
              "torch_threads": torch.get_num_threads()}
    print(f"{report['device']}: perplexity+IFD on {args.rows} real alpaca rows, {Path(model).name}")
    print(f"  batch {args.batch_size}: {batched['rows_per_s']} rows/s   "
          f"batch 1 (baseline, same run): {single['rows_per_s']} rows/s   "
          f"ratio {report['speedup']}x")
    return report


if __name__ == "__main__":
    main()
