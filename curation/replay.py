"""Replay mixing: a version's training rows plus a seeded share of rows from another dataset.

Why: tuning on a narrow set makes a model forget what it could do, and mixing general rows back
in ("replay") is the usual remedy; how much to mix is a setting worth sweeping
(`studio sweep --replay general --grid replay_fraction=0,0.1,0.3`). A version belongs to one
dataset, so the mix is imported as its own dataset, named after its inputs (resolved versions,
fraction, seed): the same mix is built once and reused, and its rows say where they came from.
"""

from __future__ import annotations

import hashlib
import json
import random
import tempfile
from pathlib import Path

from curation.datasets import load_rows, resolve_ref
from curation.importer import import_file
from kernel.errors import StudioError


def mix_name(ref: str, replay_ref: str, fraction: float, seed: int) -> str:
    """A dataset name (<= 64 chars) that identifies the mix by its exact inputs."""
    key = hashlib.sha256(f"{ref}|{replay_ref}|{fraction!r}|{seed}".encode()).hexdigest()[:8]
    dataset, version = ref.split("@")
    return f"{dataset[:28]}-{version[:12]}-replay{round(fraction * 100)}pct-{key}"


def replay_mix(store, ref: str, replay_ref: str, fraction: float, seed: int = 0) -> str:
    """`ref`'s training rows + round(fraction x their number) rows sampled from `replay_ref`
    (seeded); returns the mix as 'NAME@VERSION' (`ref` itself pinned when fraction is 0)."""
    if not 0 <= fraction <= 1:
        raise StudioError(f"replay_fraction {fraction}: must be between 0 and 1")
    ref = "@".join(resolve_ref(store, ref))
    if fraction == 0:
        return ref
    replay_ref = "@".join(resolve_ref(store, replay_ref))
    name = mix_name(ref, replay_ref, fraction, seed)
    existing = store.query("SELECT version FROM versions WHERE dataset = ? AND version = 'v1'",
                           [name])
    if existing:
        return f"{name}@v1"
    base = load_rows(store, ref, split="train")
    replay = load_rows(store, replay_ref, split="train")
    k = min(len(replay), round(fraction * len(base)))
    picked = random.Random(seed).sample(replay, k)
    rows = [_row(r, r["id"]) for r in base] + [_row(r, f"replay-{r['id']}") for r in picked]
    with tempfile.TemporaryDirectory(dir=store.workspace.root) as tmp:
        path = Path(tmp) / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        try:
            out = import_file(store, path, name)
        except StudioError:
            if store.query("SELECT 1 FROM versions WHERE dataset = ? AND version = 'v1'", [name]):
                return f"{name}@v1"  # another process built the same mix meanwhile
            raise
    return f"{out['name']}@{out['version']}"


def _row(r: dict, row_id: str) -> dict:
    return {"id": row_id, "messages": r["messages"], "category": r.get("category")}
