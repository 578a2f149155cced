"""Merge a LoRA checkpoint into its base model and save a full HF model (for export/serving).

Why a separate step: checkpoints stay small adapters (evals and vLLM load them as LoRA); a merged
copy is only needed to hand the model to tools without LoRA support.
"""

from __future__ import annotations

from pathlib import Path

from curation.errors import StudioError
from training.checkpoints import resolve


def merge_checkpoint(store, checkpoint_id: str, out: str | Path) -> Path:
    """Base + adapter merged into plain weights at `out` (safetensors), with the run's tokenizer."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ref = resolve(store, checkpoint_id)
    if ref.adapter_path is None:
        raise StudioError(f"{checkpoint_id} is a base model; there is no adapter to merge")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise StudioError(f"merge target {out} exists and is not empty")
    model = AutoModelForCausalLM.from_pretrained(ref.base_model)
    merged = PeftModel.from_pretrained(model, ref.adapter_path).merge_and_unload()
    merged.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(ref.adapter_path).save_pretrained(out)
    return out
