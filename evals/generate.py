"""Cached generation: render prompts, look the cache up, generate only what is missing, store it.

Cache key = hash(model identity, adapter content hash, rendered-prompt hash, sampling, sample
index, backend identity), so re-running a comparison never regenerates, n>1 sampling keeps every
sample, and outputs of one backend (or dtype, quantization, server) are never served as another's:
not even greedy float32 outputs, where HF and vLLM agree, are shared. The
database is touched twice, briefly: one read of the keys, one write transaction of the new
generations; the backend runs in between with no connection open.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from evals.backends import Backend, CacheOnly, backend_identity, get_backend, identity_text
from evals.prompts import adapter_hash, cache_key, model_key, render_prompts, sha256
from evals.types import ModelRef, SamplingConfig
from kernel.store import Store


@dataclass
class Item:
    """One (model, row, sample) to generate or fetch."""

    checkpoint: str
    row_id: str
    prompt: str
    prompt_hash: str
    sample_idx: int
    cache_key: str
    model: str
    adapter_hash: str | None
    backend: str                 # the backend's identity (canonical JSON), part of cache_key


@dataclass
class GenerationResult:
    outputs: dict[str, dict[str, list[str]]]       # checkpoint -> row_id -> sample outputs
    keys: dict[str, dict[str, list[str]]]          # checkpoint -> row_id -> cache keys
    n_generated: int = 0
    n_cached: int = 0
    backend: str | None = None
    backend_version: str | None = None
    identity: dict | None = None     # the backend whose outputs these are (cached ones too)
    seconds: float = 0.0
    records: list[dict] = field(default_factory=list)   # the newly generated rows


def plan(models: list[ModelRef], rows: list[dict], sampling: SamplingConfig,
         identity: dict) -> list[Item]:
    """Every (model, row, sample) with its rendered prompt and cache key (no DB, no backend)."""
    items = []
    ident = identity_text(identity)
    for m in models:
        mkey, ahash = model_key(m.base_model), adapter_hash(m.adapter_path)
        for row, prompt in zip(rows, render_prompts(m, rows), strict=True):
            phash = sha256(prompt)
            for s in range(sampling.n):
                items.append(Item(m.name, str(row["id"]), prompt, phash, s,
                                  cache_key(mkey, ahash, phash, sampling, s, ident), mkey, ahash,
                                  ident))
    return items


def cached_identity(store: Store, models: list[ModelRef], rows: list[dict],
                    sampling: SamplingConfig) -> dict | None:
    """For a cache-only reader that names no backend: the most recent backend identity that
    has every output it needs (else the most recent one with any, so the miss error is exact).
    """
    mkeys = sorted({model_key(m.base_model) for m in models})
    with store.connect() as con:
        found = con.execute(
            "SELECT backend_config FROM generations WHERE model IN (SELECT unnest(?)) "
            "AND backend_config IS NOT NULL GROUP BY backend_config "
            "ORDER BY max(created_at) DESC", [mkeys]).fetchall()
    candidates = [json.loads(r[0]) for r in found]
    for ident in candidates:
        keys = [i.cache_key for i in plan(models, rows, sampling, ident)]
        if len(cached_outputs(store, keys)) == len(set(keys)):
            return ident
    return candidates[0] if candidates else None


def cached_outputs(store: Store, keys: list[str]) -> dict[str, str]:
    if not keys:
        return {}
    with store.connect() as con:
        found = con.execute(
            "SELECT cache_key, output FROM generations WHERE cache_key IN (SELECT unnest(?))",
            [list(set(keys))]).fetchall()
    return dict(found)


def run_backend(backend: Backend, models: list[ModelRef], items: list[Item],
                sampling: SamplingConfig, batch_size: int | None = None,
                progress=None) -> list[dict]:
    """Generate `items` (all samples of each listed prompt) and return generation records."""
    by_name = {m.name: m for m in models}
    identity = backend_identity(backend)
    ident = identity_text(identity or {"backend": None})
    if identity is not None and any(i.backend != ident for i in items):
        raise RuntimeError(f"backend {backend.name} runs as {ident}, but the items were planned "
                           f"for {sorted({i.backend for i in items} - {ident})}")
    records: list[dict] = []
    wanted = {i.cache_key for i in items}
    for name in dict.fromkeys(i.checkpoint for i in items):
        mine = [i for i in items if i.checkpoint == name]
        prompts = list(dict.fromkeys(i.prompt for i in mine))
        meta = {i.prompt: i for i in mine}
        outs = backend.generate(by_name[name], prompts, sampling)
        for prompt, samples in zip(prompts, outs, strict=True):
            first = meta[prompt]
            for s, comp in enumerate(samples):
                key = cache_key(first.model, first.adapter_hash, first.prompt_hash, sampling, s,
                                ident)
                if key not in wanted:
                    continue
                records.append({
                    "cache_key": key, "model": first.model, "adapter_hash": first.adapter_hash,
                    "prompt_hash": first.prompt_hash, "sampling": sampling.canonical(),
                    "sample_idx": s, "output": comp.text, "n_tokens": comp.n_tokens,
                    "backend": backend.name, "backend_config": ident,
                    "backend_version": backend.version(),
                    "batch_size": batch_size, "finish_reason": comp.finish_reason})
        if progress:
            progress(name, len(records))
    return records


GEN_COLUMNS = ("cache_key", "model", "adapter_hash", "prompt_hash", "sampling", "sample_idx",
               "output", "n_tokens", "backend", "backend_config", "backend_version", "batch_size",
               "finish_reason")


def write_generations(con, records: list[dict]) -> None:
    """Insert new generations inside the caller's transaction (existing keys are kept)."""
    if not records:
        return
    cols = ", ".join(GEN_COLUMNS)
    marks = ", ".join("?" for _ in GEN_COLUMNS)
    con.executemany(
        f"INSERT INTO generations ({cols}) VALUES ({marks}) ON CONFLICT (cache_key) DO NOTHING",
        [[r.get(c) for c in GEN_COLUMNS] for r in records])


def generate_cached(store: Store, models: list[ModelRef], rows: list[dict],
                    sampling: SamplingConfig, backend: str | Backend = "hf",
                    backend_options: dict | None = None, write: bool = True) -> GenerationResult:
    """Outputs for every model x row x sample, generating (once, one backend) only cache misses.

    write=False leaves storing `result.records` to the caller (to commit them with scores).
    """
    t0 = time.perf_counter()
    opts = dict(backend_options or {})
    identity = backend_identity(backend, opts)
    if identity is None and isinstance(backend, CacheOnly):
        identity = cached_identity(store, models, rows, sampling)
        backend = CacheOnly(backend.hint, identity)
    items = plan(models, rows, sampling, identity or {"backend": None})
    have = cached_outputs(store, [i.cache_key for i in items])
    missing = [i for i in items if i.cache_key not in have]
    records: list[dict] = []
    name = version = None
    if missing:
        need = [m for m in models if any(i.checkpoint == m.name for i in missing)]
        owned = isinstance(backend, str)
        engine = get_backend(backend, need, **opts) if owned else backend
        try:
            records = run_backend(engine, need, missing, sampling,
                                  batch_size=opts.get("batch_size") or getattr(engine, "batch_size", None))
            name, version = engine.name, engine.version()
        finally:
            if owned:
                engine.close()
        if write:
            with store.transaction() as con:
                write_generations(con, records)
        have.update({r["cache_key"]: r["output"] for r in records})
    result = GenerationResult(outputs={}, keys={}, n_generated=len(records),
                              n_cached=len(items) - len(missing), backend=name,
                              backend_version=version, identity=identity, records=records)
    for i in items:
        result.outputs.setdefault(i.checkpoint, {}).setdefault(i.row_id, []).append(have[i.cache_key])
        result.keys.setdefault(i.checkpoint, {}).setdefault(i.row_id, []).append(i.cache_key)
    result.seconds = time.perf_counter() - t0
    return result


def sampling_of(record: dict) -> SamplingConfig:
    return SamplingConfig.from_dict(json.loads(record["sampling"]))
