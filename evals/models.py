"""Checkpoint id -> ModelRef: through `training.checkpoints.resolve`, or a folder path.

Accepted ids: whatever training's resolver knows ('<run>/step-N', 'base:<model>'), plus
'base:<path or HF name>', a LoRA adapter folder (base model read from meta.json or
adapter_config.json), or a base model folder. The chat template and EOS come from the run
(meta.json) when there is one, never guessed.
"""

from __future__ import annotations

import json
from pathlib import Path

from curation.errors import NotFoundError, StudioError
from curation.store import Store
from evals.types import ModelRef


def _from_folder(ident: str) -> ModelRef | None:
    folder = Path(ident)
    if (folder / "adapter_config.json").exists():
        meta_path = folder / "meta.json"
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        cfg = json.loads((folder / "adapter_config.json").read_text())
        base = meta.get("base_model") or cfg.get("base_model_name_or_path")
        if not base:
            raise StudioError(f"{folder}/adapter_config.json: field 'base_model_name_or_path' is empty")
        return ModelRef(base_model=str(base), adapter_path=str(folder.resolve()), name=ident,
                        chat_template=meta.get("chat_template"), eos_token=meta.get("eos_token"))
    if (folder / "config.json").exists():
        return ModelRef(base_model=str(folder.resolve()), name=f"base:{ident}")
    return None


def resolve_model(store: Store | None, ident: str) -> ModelRef:
    """Resolve a checkpoint id or folder to a ModelRef; NotFoundError names the id.

    'base:' ids and folders are resolved from the files themselves; run checkpoint ids go
    to `training.checkpoints.resolve`.
    """
    if ident.startswith("base:"):
        target = ident[len("base:"):]
        if not target:
            raise NotFoundError("checkpoint id 'base:' names no model")
        from training.models import resolve_base_model

        target = resolve_base_model(store, target)  # an imported model's name -> its folder
        folder = _from_folder(target)
        return ModelRef(base_model=folder.base_model if folder else target, name=ident)
    ref = _from_folder(ident)
    if ref is not None:
        return ref
    if store is not None:
        from training.checkpoints import resolve

        return resolve(store, ident)
    raise NotFoundError(f"checkpoint {ident!r} not found (not a known id, adapter or model folder)")
