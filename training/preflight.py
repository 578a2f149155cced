"""Checks that need the model and tokenizer, run in the launcher before any job starts.

Why here and not in the worker: a typo in a model path or module name should be one clear
error at the prompt, not a failed job a minute later. Only the config and tokenizer are read and
the model is built on the meta device, so this costs well under a second even for large models.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from kernel.errors import StudioError
from training.config import ALL_LINEAR, TrainConfig
from training.formatting import encode_row, ensure_chat_template

MAX_AUTO_SEQ_LEN = 2048


def resolve_model_name(name: str) -> str:
    """A local folder becomes an absolute path; anything else must be an HF name in the cache."""
    if not name:
        raise StudioError("base_model is not set")
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise StudioError(f"base_model {name}: folder has no config.json (not an HF model)")
        return str(path.resolve())
    if name.startswith((".", "/", "~")) or os.sep in name.strip("/").replace("/", "", 1):
        raise StudioError(f"base_model {name}: no such model folder")
    return name


def load_model_config(name: str, trust_remote_code: bool = False):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code,
                                          local_files_only=True)
    except (OSError, ValueError) as exc:
        raise StudioError(f"base_model {name}: unknown model (not a local folder and not in the "
                          f"offline HF cache): {str(exc).splitlines()[0]}") from exc


def load_tokenizer(name: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code,
                                            local_files_only=True)
    except (OSError, ValueError) as exc:
        raise StudioError(f"base_model {name}: cannot load its tokenizer: {exc}") from exc
    ensure_chat_template(tok)
    return tok


def linear_module_names(model_config, trust_remote_code: bool = False) -> set[str]:
    """Short names of the Linear layers (q_proj, ...), from a model built on the meta device."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(model_config, trust_remote_code=trust_remote_code)
    names = set()
    for full, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) or type(module).__name__ == "Conv1D":
            names.add(full.rsplit(".", 1)[-1])
    return names


def model_max_length(model_config) -> int:
    for attr in ("max_position_embeddings", "n_positions", "seq_length"):
        value = getattr(model_config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return MAX_AUTO_SEQ_LEN


def resolve_target_modules(requested: list[str], available: set[str]) -> list[str]:
    """'all-linear' -> every linear layer but the output head; names must exist in the model."""
    candidates = sorted(available - {"lm_head", "embed_out", "output", "score"})
    if requested == [ALL_LINEAR]:
        return candidates
    unknown = [m for m in requested if m not in available]
    if unknown:
        raise StudioError(f"target_modules: unknown module name(s) {unknown}; this model's linear "
                          f"layers are {candidates}")
    return list(requested)


def preflight(cfg: TrainConfig, rows: list[dict] | None = None) -> TrainConfig:
    """Validate `cfg` against its model (and rows) and return it with auto values resolved."""
    base = resolve_model_name(cfg.base_model)
    model_config = load_model_config(base, cfg.trust_remote_code)
    limit = model_max_length(model_config)
    if cfg.max_seq_len > limit:
        raise StudioError(f"max_seq_len {cfg.max_seq_len} is above the model's maximum {limit} "
                          f"({base})")
    seq_len = cfg.max_seq_len or min(limit, MAX_AUTO_SEQ_LEN)
    targets = resolve_target_modules(cfg.target_modules,
                                     linear_module_names(model_config, cfg.trust_remote_code))
    if cfg.qlora_4bit:
        _check_qlora()
    tokenizer = load_tokenizer(base, cfg.trust_remote_code)
    if rows is not None:
        _check_rows(tokenizer, rows, seq_len)
    return dataclasses.replace(cfg, base_model=base, max_seq_len=seq_len, target_modules=targets)


def _check_rows(tokenizer, rows: list[dict], seq_len: int) -> None:
    """Every row must format; at least one must keep response tokens within max_seq_len."""
    if not rows:
        raise StudioError("the training split is empty")
    usable = 0
    for row in rows[:200]:
        try:
            enc = encode_row(tokenizer, row, seq_len)
        except StudioError as exc:
            raise StudioError(f"row {row.get('id', '?')}: {exc}") from exc
        usable += enc.n_response_tokens > 0
    if usable == 0:
        raise StudioError(f"no row keeps any response token within max_seq_len {seq_len}")


def _check_qlora() -> None:
    import importlib.util

    import torch

    if not torch.cuda.is_available():
        raise StudioError("qlora_4bit needs a CUDA GPU; none is available")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise StudioError("qlora_4bit needs the bitsandbytes package (pip install bitsandbytes)")
