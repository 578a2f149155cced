"""Turn canonical rows into prompt strings with the training chat template, and hash things.

The rendered prompt text (template included) is what gets hashed for the generation cache, so
changing the template, the system prompt or the instruction all miss the cache, as they must.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

from evals.types import ModelRef, SamplingConfig
from kernel.errors import StudioError
from kernel.status import adapter_hash as checkpoint_adapter_hash


def sha256(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()


def prompt_messages(row: dict) -> list[dict]:
    """The conversation up to (not including) the final assistant turn, which is the reference."""
    messages = row.get("messages")
    if not messages:
        instruction = row.get("instruction")
        if not instruction:
            raise StudioError(f"row {row.get('id')!r}: field 'messages' (or 'instruction') is empty")
        messages = ([{"role": "system", "content": row["system"]}] if row.get("system") else []) + [
            {"role": "user", "content": instruction}]
    if isinstance(messages, str):
        messages = json.loads(messages)
    if messages and messages[-1].get("role") == "assistant":
        messages = messages[:-1]
    if not messages:
        raise StudioError(f"row {row.get('id')!r}: field 'messages' has no turn before the answer")
    return messages


def reference(row: dict) -> str | None:
    """The expected answer: the `response` column, else the last assistant turn."""
    if row.get("response") is not None:
        return row["response"]
    messages = row.get("messages") or []
    if isinstance(messages, str):
        messages = json.loads(messages)
    if messages and messages[-1].get("role") == "assistant":
        return messages[-1].get("content")
    return None


@lru_cache(maxsize=16)
def load_tokenizer(model_path: str, chat_template: str | None = None):
    """The tokenizer of the base model with the run's chat template (left padding for batching)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path)
    if chat_template:
        tok.chat_template = chat_template
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def render_prompts(model: ModelRef, rows: list[dict]) -> list[str]:
    """Render each row's prompt turns with the model's chat template (adding the answer cue)."""
    tok = load_tokenizer(model.adapter_path or model.base_model, model.chat_template)
    if not tok.chat_template:
        raise StudioError(f"model {model.name}: tokenizer has no chat template and none was given")
    return [tok.apply_chat_template(prompt_messages(r), add_generation_prompt=True, tokenize=False)
            for r in rows]


def _file_digest(path: Path, limit: int = 1 << 20) -> str:
    h = hashlib.sha256(str(path.stat().st_size).encode())
    with path.open("rb") as f:
        h.update(f.read(limit))
    return h.hexdigest()


@lru_cache(maxsize=64)
def model_key(base_model: str) -> str:
    """Identity of a base model: its name, plus a content digest when it is a local folder."""
    folder = Path(base_model)
    if not folder.is_dir():
        return base_model
    parts = [base_model]
    for f in sorted(folder.glob("*.safetensors")) + [folder / "config.json"]:
        if f.exists():
            parts.append(f"{f.name}:{_file_digest(f)}")
    return f"{folder.name}@{sha256(json.dumps(parts))[:16]}"


def adapter_hash(adapter_path: str | None) -> str | None:
    """Content hash of a LoRA adapter (None for the base model); the same one checkpoints record."""
    if not adapter_path:
        return None
    digest = checkpoint_adapter_hash(adapter_path)
    if digest is None:
        raise StudioError(f"adapter {adapter_path}: adapter_config.json is missing")
    return digest


SEEDING = "seed-per-prompt"  # how sampled outputs are seeded (SamplingConfig.seed_for)


def cache_key(model: str, adapter: str | None, prompt_hash: str, sampling: SamplingConfig,
              sample_idx: int, backend: str) -> str:
    """`backend` is the backend's canonical identity (evals.backends.identity_text): outputs of
    different backends or numeric settings never share a key. A sampled output's key also names
    the seeding (`SEEDING`): samples drawn with one seed for every prompt are not reused."""
    parts = [model, adapter, prompt_hash, sampling.canonical(), sample_idx, backend]
    return sha256(json.dumps(parts if sampling.greedy else [*parts, SEEDING]))


def truncate_at_stop(text: str, stop: tuple[str, ...]) -> str:
    """Cut at the first stop string so every backend returns the same text for the same tokens."""
    cut = min((i for s in stop if s and (i := text.find(s)) >= 0), default=-1)
    return text if cut < 0 else text[:cut]
