"""What evals load: a checkpoint id -> base model + adapter + the exact chat template and EOS.

Ids: `<run_id>/step-<N>` for adapters saved by a training run, `base:<model>` for a base model
(an HF name, local folder or imported model name, `training.models`) without adapter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from curation.errors import NotFoundError, StudioError
from training.status import META_FILE


@dataclass(frozen=True)
class ModelRef:
    """Everything a generation backend needs to load a model the way it was trained: a base
    model (HF name or folder) plus an optional LoRA adapter folder, template and EOS."""

    base_model: str
    adapter_path: str | None = None
    name: str = ""                    # checkpoint id shown to users ('base:<m>' or '<run>/step-N')
    chat_template: str | None = None  # the exact template used in training (None = tokenizer's)
    eos_token: str | None = None

    def __post_init__(self) -> None:
        if not self.base_model:
            raise StudioError("model reference: field 'base_model' is empty")
        if not self.name:
            object.__setattr__(self, "name", self.adapter_path or f"base:{self.base_model}")


def _tokenizer_template(folder: str) -> tuple[str | None, str | None]:
    """Chat template and EOS from a local model folder's tokenizer files (no model load)."""
    path = Path(folder)
    template = None
    if (path / "chat_template.jinja").exists():
        template = (path / "chat_template.jinja").read_text()
    eos = None
    config = path / "tokenizer_config.json"
    if config.exists():
        data = json.loads(config.read_text())
        template = template or data.get("chat_template")
        eos = data.get("eos_token")
        if isinstance(eos, dict):
            eos = eos.get("content")
    return template, eos


def resolve(store, checkpoint_id: str) -> ModelRef:
    """The ModelRef of a checkpoint id (refreshing running jobs once if it is not known yet)."""
    if checkpoint_id.startswith("base:"):
        base = checkpoint_id[len("base:"):]
        if not base:
            raise NotFoundError("checkpoint id 'base:' names no model")
        from training.models import resolve_base_model

        base = resolve_base_model(store, base)
        template, eos = _tokenizer_template(base)
        return ModelRef(name=checkpoint_id, base_model=base, chat_template=template, eos_token=eos)
    sql = "SELECT id, path, base_model FROM checkpoints WHERE id = ?"
    rows = store.query(sql, [checkpoint_id])
    if not rows:
        from training.jobs import refresh

        refresh(store)
        rows = store.query(sql, [checkpoint_id])
    if not rows:
        raise NotFoundError(f"checkpoint {checkpoint_id!r} not found (ids look like "
                            f"'<run_id>/step-<N>' or 'base:<model>')")
    row = rows[0]
    meta_path = Path(row["path"]) / META_FILE
    if not meta_path.exists():
        raise NotFoundError(f"checkpoint {checkpoint_id}: {meta_path} is missing")
    meta = json.loads(meta_path.read_text())
    return ModelRef(name=checkpoint_id, base_model=row["base_model"], adapter_path=row["path"],
                    chat_template=meta.get("chat_template"), eos_token=meta.get("eos_token"))


def list_checkpoints(store, run_id: str | None = None) -> list[dict]:
    sql = "SELECT id, run_id, step, path, base_model, adapter_hash, metrics, created_at FROM checkpoints"
    if run_id:
        return store.query(sql + " WHERE run_id = ? ORDER BY step", [run_id])
    return store.query(sql + " ORDER BY created_at DESC")
