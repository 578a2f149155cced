"""Bench: the base model hash a run records, first launch vs later launches (cache hit).

    .venv/bin/python bench/bench_model_hash.py [--mb 512] [--repeats 3]

Writes a fake model folder (one safetensors-named file of --mb MiB of random bytes), then times
`training.provenance.model_sha256` with an empty cache (reads every byte: the baseline) and
with the cache filled (only stat calls), over --repeats fresh caches, and prints the ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from kernel.machine import describe_line
from training.provenance import HashCache, model_sha256


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model"
        model.mkdir()
        with (model / "model.safetensors").open("wb") as fh:
            for _ in range(args.mb):
                fh.write(os.urandom(1 << 20))
        cold, warm = [], []
        for i in range(args.repeats):
            cache_path = Path(tmp) / f"cache-{i}.json"
            t0 = time.perf_counter()
            cache = HashCache(cache_path)
            first = model_sha256(str(model), cache)
            cache.save()
            cold.append(time.perf_counter() - t0)
            t0 = time.perf_counter()  # a later launch: load the cache file, stat, look up
            again = model_sha256(str(model), HashCache(cache_path))
            warm.append(time.perf_counter() - t0)
            assert again == first
    print(f"CPU: {describe_line()}; {args.mb} MiB of weights, {args.repeats} repeats")
    print(f"first launch (reads the weights): median {statistics.median(cold):.3f} s "
          f"({args.mb / statistics.median(cold):.0f} MiB/s)")
    print(f"later launch (cache hit, stat only): median {1000 * statistics.median(warm):.3f} ms")
    print(f"ratio first / cached: {statistics.median(cold) / statistics.median(warm):.0f}x")


if __name__ == "__main__":
    main()
