"""Model-based signals: response perplexity under a causal LM, and IFD.

IFD (instruction-following difficulty, Li et al. 2023) = loss of the response given the
instruction / loss of the response alone; near or above 1 means the instruction does not help
predict the response (often a mismatched or low-value pair). The conversation is formatted with
the tokenizer's chat template when it has one, else as "instruction\\n\\nresponse"; response
tokens are those after the prompt's tokens, so only they count in the loss. Batched, sorted
by length; runs on CPU for small models and on CUDA when present.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kernel.errors import StudioError

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ModelScoreConfig:
    """How to run the reference model."""

    model: str                 # HF name or local folder of a causal LM
    batch_size: int = 8        # sequences per forward pass
    max_length: int = 512      # tokens kept per sequence (prompt is cut from the left)
    device: str | None = None  # None = cuda when available, else cpu
    adapter: str | None = None # a PEFT (LoRA) adapter folder applied on `model`; its tokenizer
    #                            (the chat template the adapter was trained with) is used

    def __post_init__(self):
        if not self.model:
            raise StudioError("model scoring needs --model (an HF name or local folder)")
        if self.model.startswith((".", "/", "~")) and not Path(self.model).expanduser().exists():
            raise StudioError(f"cannot load model {self.model!r}: no such folder")
        if self.batch_size < 1 or self.max_length < 8:
            raise StudioError("model scoring: batch_size must be >= 1 and max_length >= 8")


def resolve_score_model(store, model: str | None) -> str:
    """An imported model's name (`studio model list`) -> its folder; paths/HF names unchanged."""
    folder = store.model_folder(model) if model and "/" not in model else None
    if folder is not None and not (folder / "config.json").exists():
        raise StudioError(f"model {model!r} is recorded but its folder {folder} is missing or "
                          "incomplete; remove the record or import it again")
    return str(folder) if folder is not None else (model or "")


def _split(messages: list[dict]) -> tuple[list[dict], str]:
    """(context messages before the last assistant turn, that turn's text)."""
    last = max((k for k, m in enumerate(messages) if m["role"] == "assistant"), default=None)
    if last is None:
        return messages, ""
    return messages[:last], messages[last]["content"] or ""


def encode(tokenizer, messages: list[dict], max_length: int) -> tuple[list[int], int, list[int]]:
    """(conditional ids, index of first response token, response-alone ids)."""
    context, response = _split(messages)
    if getattr(tokenizer, "chat_template", None):
        prompt_ids = tokenizer.apply_chat_template(context, add_generation_prompt=True,
                                                   tokenize=True)
        full_ids = tokenizer.apply_chat_template(
            [*context, {"role": "assistant", "content": response}], tokenize=True)
        prompt_ids = list(getattr(prompt_ids, "input_ids", prompt_ids))
        full_ids = list(getattr(full_ids, "input_ids", full_ids))
        # the template may not render a strict prefix; use the common prefix as the prompt
        start = 0
        while start < min(len(prompt_ids), len(full_ids)) and prompt_ids[start] == full_ids[start]:
            start += 1
    else:
        user = next((m["content"] for m in context if m["role"] == "user"), "")
        prompt = f"{user}\n\n"
        prompt_ids = tokenizer(prompt)["input_ids"]
        full_ids = tokenizer(prompt + response)["input_ids"]
        start = len(prompt_ids)
    alone = tokenizer(response, add_special_tokens=True)["input_ids"]
    if tokenizer.bos_token_id is not None and (not alone or alone[0] != tokenizer.bos_token_id):
        alone = [tokenizer.bos_token_id, *alone]
    if len(full_ids) > max_length:  # keep the response, cut the prompt from the left
        cut = len(full_ids) - max_length
        full_ids, start = full_ids[cut:], max(start - cut, 1)
    return full_ids, max(start, 1), alone[:max_length]


def _batch_losses(model, seqs: list[tuple[list[int], int]], pad_id: int, device) -> list[float]:
    """Mean cross-entropy over positions >= start of each sequence (nan when none)."""
    import torch

    width = max(len(s) for s, _ in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    labels = torch.full((len(seqs), width), -100, dtype=torch.long)
    for k, (s, start) in enumerate(seqs):
        ids[k, :len(s)] = torch.tensor(s)
        mask[k, :len(s)] = 1
        labels[k, start:len(s)] = torch.tensor(s[start:])
    with torch.no_grad():
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
    shift_logits, shift_labels = logits[:, :-1], labels[:, 1:].to(device)
    ce = torch.nn.functional.cross_entropy(shift_logits.transpose(1, 2), shift_labels,
                                           ignore_index=-100, reduction="none")
    counts = (shift_labels != -100).sum(dim=1)
    means = ce.sum(dim=1) / counts.clamp(min=1)
    return [float(m) if c > 0 else float("nan") for m, c in zip(means.cpu(), counts.cpu(), strict=True)]


def response_losses(cfg: ModelScoreConfig, conversations: Sequence[list[dict]],
                    progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(loss of response given context, loss of response alone) per conversation."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(cfg.adapter or cfg.model)
        model = AutoModelForCausalLM.from_pretrained(cfg.model)
        if cfg.adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, cfg.adapter).merge_and_unload()
    except Exception as exc:  # many error types; the user needs the model name and reason
        what = f"{cfg.model!r} with adapter {cfg.adapter!r}" if cfg.adapter else repr(cfg.model)
        raise StudioError(f"cannot load model {what}: {exc}") from exc
    device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).eval()
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    limit = min(cfg.max_length, getattr(model.config, "max_position_embeddings", cfg.max_length))
    encoded = [encode(tokenizer, list(c), limit) for c in conversations]
    n = len(encoded)
    cond, alone = np.full(n, np.nan), np.full(n, np.nan)
    order = np.argsort([len(e[0]) for e in encoded])
    for s in range(0, n, cfg.batch_size):
        idx = order[s:s + cfg.batch_size]
        cond[idx] = _batch_losses(model, [(encoded[i][0], encoded[i][1]) for i in idx],
                                  pad_id, device)
        alone[idx] = _batch_losses(model, [(encoded[i][2], 1) for i in idx], pad_id, device)
        if progress:
            progress(min(s + cfg.batch_size, n), n)
    return cond, alone
