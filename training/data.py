"""Training rows: from the store (a dataset version) or a JSONL file, split, exported for the worker.

Why export: the worker process never opens the database, so the launcher writes the exact rows
of the run to `RUN_DIR/train.jsonl` and `RUN_DIR/eval.jsonl`; the run is then reproducible from
its folder alone.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from kernel.errors import NotFoundError, StudioError
from training.config import TrainConfig
from training.formatting import row_messages

TRAIN_FILE = "train.jsonl"
EVAL_FILE = "eval.jsonl"


def read_jsonl(path: str | Path) -> list[dict]:
    """Rows of a JSONL file; a bad line is an error naming the file and line."""
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"data file {path} does not exist")
    rows = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise StudioError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from exc
            if not isinstance(row, dict):
                raise StudioError(f"{path}:{lineno}: expected a JSON object")
            try:
                row_messages(row)
            except StudioError as exc:
                raise StudioError(f"{path}:{lineno}: {exc}") from exc
            row.setdefault("id", f"line-{lineno}")
            rows.append(row)
    return rows


def write_jsonl(path: str | Path, rows: list[dict]) -> None:
    with Path(path).open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, default=str) + "\n")


def load_rows(store, cfg: TrainConfig) -> list[dict]:
    """The training split of `cfg.dataset` (via curation), else the rows of `cfg.data_file`."""
    if cfg.dataset:
        try:
            from curation.datasets import load_rows as curation_load_rows
        except ImportError as exc:
            raise StudioError("dataset references need curation.datasets, which is not "
                              "available in this build; pass data_file instead") from exc
        rows = curation_load_rows(store, cfg.dataset, split="train")
        keys = ("id", "messages", "instruction", "response", "system", "category", "tools")
        return [{k: r.get(k) for k in keys} for r in rows]
    if cfg.data_file:
        return read_jsonl(cfg.data_file)
    raise StudioError("no training data: set dataset (NAME[@VERSION]) or data_file")


def split_rows(rows: list[dict], eval_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """A seeded random hold-out of `eval_fraction` of the rows (at least one when > 0)."""
    if not rows:
        raise StudioError("the dataset has no rows to train on")
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n_eval = 0 if eval_fraction <= 0 else max(1, round(len(rows) * eval_fraction))
    eval_idx = set(order[:n_eval])
    train = [r for i, r in enumerate(rows) if i not in eval_idx]
    evals = [r for i, r in enumerate(rows) if i in eval_idx]
    if not train:
        raise StudioError(f"the training split is empty after holding out {n_eval} of "
                          f"{len(rows)} rows for eval; add rows or lower eval_fraction")
    return train, evals


def export_split(run_dir: Path, train: list[dict], evals: list[dict]) -> None:
    write_jsonl(run_dir / TRAIN_FILE, train)
    write_jsonl(run_dir / EVAL_FILE, evals)
