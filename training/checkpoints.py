"""What evals load: a checkpoint id -> base model + adapter + the exact chat template and EOS.

Ids: `<run_id>/step-<N>` for adapters saved by a training run, `base:<model>` for a base model
(an HF name, local folder or imported model name, `training.models`) without adapter.
`parse_checkpoint_id` is the one parser and `resolve` the one resolver (it also takes an
adapter or model folder); CLI, UI and evals use these.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from kernel.errors import NotFoundError, StudioError
from kernel.status import META_FILE


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
            object.__setattr__(self, "name", self.adapter_path or base_checkpoint_id(self.base_model))


BASE_PREFIX = "base:"
_RUN_STEP = re.compile(r"([^/]+)/step-(\d+)")


@dataclass(frozen=True)
class CheckpointId:
    """A parsed checkpoint id: a base model (`base_model` set) or a run's step."""

    base_model: str | None = None
    run_id: str | None = None
    step: int | None = None


def base_checkpoint_id(model: str) -> str:
    """The id of a base model without adapter: `base:<model>`."""
    return BASE_PREFIX + str(model)


def parse_checkpoint_id(ident: str) -> CheckpointId | None:
    """`base:<model>` or `<run_id>/step-<N>` parsed; None for anything else (e.g. a folder).

    Raises NotFoundError for `base:` without a model."""
    if ident.startswith(BASE_PREFIX):
        model = ident[len(BASE_PREFIX):]
        if not model:
            raise NotFoundError("checkpoint id 'base:' names no model")
        return CheckpointId(base_model=model)
    match = _RUN_STEP.fullmatch(ident)
    return CheckpointId(run_id=match[1], step=int(match[2])) if match else None


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


def _from_folder(ident: str) -> ModelRef | None:
    """A LoRA adapter folder (base model from meta.json or adapter_config.json) or a base
    model folder; None when `ident` is neither."""
    folder = Path(ident)
    if (folder / "adapter_config.json").exists():
        meta_path = folder / META_FILE
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        cfg = json.loads((folder / "adapter_config.json").read_text())
        base = meta.get("base_model") or cfg.get("base_model_name_or_path")
        if not base:
            raise StudioError(f"{folder}/adapter_config.json: field 'base_model_name_or_path' is empty")
        return ModelRef(base_model=str(base), adapter_path=str(folder.resolve()), name=ident,
                        chat_template=meta.get("chat_template"), eos_token=meta.get("eos_token"))
    if (folder / "config.json").exists():
        return ModelRef(base_model=str(folder.resolve()), name=base_checkpoint_id(ident))
    return None


def resolve(store, checkpoint_id: str) -> ModelRef:
    """The ModelRef of a checkpoint id or folder; NotFoundError names the id.

    `base:<model>`: that model without adapter (a model folder is made absolute; an adapter
    folder stands for its base model), with its tokenizer's template and EOS. A run
    checkpoint `<run>/step-N` (refreshing running jobs once if it is not known yet): its
    adapter with the exact template and EOS recorded in training. Else an adapter or model
    folder. `store` may be None when only folders and base models are given.
    """
    parsed = parse_checkpoint_id(checkpoint_id)
    if parsed is not None and parsed.base_model is not None:
        from training.models import resolve_base_model

        target = resolve_base_model(store, parsed.base_model)  # imported name -> its folder
        folder = _from_folder(target)
        base = folder.base_model if folder else target
        template, eos = _tokenizer_template(base)
        return ModelRef(name=checkpoint_id, base_model=base, chat_template=template, eos_token=eos)
    if parsed is None:
        ref = _from_folder(checkpoint_id)
        if ref is not None:
            return ref
    if store is None:
        raise NotFoundError(f"checkpoint {checkpoint_id!r} not found (not a known id, adapter "
                            "or model folder)")
    sql = "SELECT id, path, base_model FROM checkpoints WHERE id = ?"
    rows = store.query(sql, [checkpoint_id])
    if not rows:
        from kernel.jobs import refresh

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
