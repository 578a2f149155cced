"""The offline base model: a byte-level BPE tokenizer and a small Llama pretrained on CPU.

Why: nothing can be downloaded from a model hub here, yet every part of the studio needs a real
base model that loads exactly like `Qwen/Qwen2.5-0.5B-Instruct` (HF layout, safetensors, chat
template, EOS) and that has learnt something fine-tuning can measurably change. The model is
pretrained on the BASE task families of `training.synthetic` with loss on responses only;
head_dim 32 keeps it servable by vLLM's CPU backend. Deterministic for a seed and thread count.

    from training.tiny_model import TinyModelConfig, build_tiny_model
    build_tiny_model("models/tiny", TinyModelConfig(pretrain_steps=3000))   # ~3 min on 2 cores
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from kernel.errors import StudioError
from training import synthetic

# Bump when the builder's code changes what it produces (part of the fingerprint).
BUILDER_VERSION = "tiny-1"

SPECIAL_TOKENS = ["<|pad|>", "<|eos|>", "<|user|>", "<|assistant|>", "<|system|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}<|system|>{{ m['content'] }}"
    "{% elif m['role'] == 'user' %}<|user|>{{ m['content'] }}"
    "{% elif m['role'] == 'assistant' %}<|assistant|>{{ m['content'] }}<|eos|>"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
REPORT_FILE = "tiny_model.json"


@dataclass
class TinyModelConfig:
    """Shape and pretraining schedule of the offline base model (defaults: ~3 min on 2 cores)."""

    pretrain_steps: int = field(default=3000, metadata={
        "help": "Full-parameter pretraining steps on the BASE task families (~17 steps/s on 2 cores)."})
    seed: int = field(default=0, metadata={"help": "Seed for data, init and tokenizer corpus."})
    batch_size: int = field(default=32, metadata={"help": "Examples per pretraining step."})
    lr: float = field(default=2e-3, metadata={"help": "AdamW peak learning rate."})
    warmup_steps: int = field(default=50, metadata={"help": "Linear warm-up steps, then cosine decay."})
    vocab_size: int = field(default=800, metadata={"help": "BPE target vocabulary (incl. specials)."})
    hidden_size: int = field(default=128, metadata={"help": "Model width."})
    num_layers: int = field(default=4, metadata={"help": "Decoder layers."})
    num_heads: int = field(default=4, metadata={"help": "Attention heads (head_dim = 32, vLLM CPU needs >= 32)."})
    head_dim: int = field(default=32, metadata={"help": "Attention head size."})
    intermediate_size: int = field(default=384, metadata={"help": "MLP width."})
    max_position_embeddings: int = field(default=256, metadata={"help": "Longest sequence the model takes."})
    n_examples: int = field(default=20000, metadata={"help": "Size of the pretraining example pool (cycled)."})

    def __post_init__(self) -> None:
        for name in ("pretrain_steps", "warmup_steps", "n_examples"):
            if getattr(self, name) < 0:
                raise StudioError(f"TinyModelConfig.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("batch_size", "vocab_size", "hidden_size", "num_layers", "num_heads",
                     "head_dim", "intermediate_size", "max_position_embeddings"):
            if getattr(self, name) <= 0:
                raise StudioError(f"TinyModelConfig.{name} must be > 0, got {getattr(self, name)}")
        if self.lr <= 0:
            raise StudioError(f"TinyModelConfig.lr must be > 0, got {self.lr}")
        if self.head_dim < 32:
            raise StudioError(f"TinyModelConfig.head_dim must be >= 32 for vLLM's CPU backend, got {self.head_dim}")

    def fingerprint(self) -> str:
        """Short hash of every field and the builder version: names a cached build."""
        payload = json.dumps({"v": BUILDER_VERSION, **dataclasses.asdict(self)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


def build_tokenizer(cfg: TinyModelConfig):
    """Byte-level BPE trained on the synthetic corpus, wrapped as a PreTrainedTokenizerFast."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=cfg.vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(synthetic.corpus(seed=cfg.seed), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|eos|>", pad_token="<|pad|>",
        additional_special_tokens=["<|user|>", "<|assistant|>", "<|system|>"],
        chat_template=CHAT_TEMPLATE, model_max_length=cfg.max_position_embeddings,
        padding_side="right", clean_up_tokenization_spaces=False,
    )


def _model_config(cfg: TinyModelConfig, tokenizer):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads, head_dim=cfg.head_dim,
        intermediate_size=cfg.intermediate_size, max_position_embeddings=cfg.max_position_embeddings,
        tie_word_embeddings=True, rms_norm_eps=1e-5, initializer_range=0.02,
        bos_token_id=None, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        torch_dtype="float32",
    )


def _pretraining_pool(cfg: TinyModelConfig, tokenizer) -> list:
    from training.formatting import encode, row_messages

    needed = min(cfg.n_examples, max(1, cfg.pretrain_steps) * cfg.batch_size)
    n_per_family = max(1, needed // len(synthetic.BASE_FAMILIES))
    rows = synthetic.generate(list(synthetic.BASE_FAMILIES), n_per_family, seed=cfg.seed + 1)
    return [encode(tokenizer, row_messages(r), cfg.max_position_embeddings) for r in rows]


def _collate(batch, pad_id: int):
    import torch

    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, e in enumerate(batch):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        labels[i, :n] = torch.tensor(e.labels)
        mask[i, :n] = 1
    return ids, mask, labels


def _lr_factor(step: int, cfg: TinyModelConfig) -> float:
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    span = max(1, cfg.pretrain_steps - cfg.warmup_steps)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - cfg.warmup_steps) / span))


def _pretrain(model, pool: list, cfg: TinyModelConfig, pad_id: int, log) -> dict:
    import torch

    rng = random.Random(cfg.seed + 2)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0, betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, cfg))
    model.train()
    order: list[int] = []
    losses: list[float] = []
    t0 = time.perf_counter()
    tokens = 0
    for step in range(cfg.pretrain_steps):
        if len(order) < cfg.batch_size:
            fresh = list(range(len(pool)))
            rng.shuffle(fresh)
            order += fresh
        batch = [pool[order.pop()] for _ in range(cfg.batch_size)]
        ids, mask, labels = _collate(batch, pad_id)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        tokens += int(mask.sum())
        losses.append(loss.item())
        if log and (step % 200 == 0 or step == cfg.pretrain_steps - 1):
            log(f"pretrain step {step + 1}/{cfg.pretrain_steps} loss {losses[-1]:.4f}")
    elapsed = time.perf_counter() - t0
    tail = losses[-20:] or [float("nan")]
    return {"final_loss": sum(tail) / len(tail), "seconds": round(elapsed, 1),
            "tokens_per_s": round(tokens / elapsed, 1) if elapsed else None}


def build_tiny_model(path: str | os.PathLike, cfg: TinyModelConfig | None = None,
                     log=None) -> Path:
    """Train the tokenizer, pretrain the model and save both in the standard HF layout."""
    import torch
    from transformers import GenerationConfig, LlamaForCausalLM

    cfg = cfg or TinyModelConfig()
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    from training.trainer import torch_threads

    torch.set_num_threads(torch_threads())
    tokenizer = build_tokenizer(cfg)
    model = LlamaForCausalLM(_model_config(cfg, tokenizer))
    pool = _pretraining_pool(cfg, tokenizer)
    stats = _pretrain(model, pool, cfg, tokenizer.pad_token_id, log)
    model.eval()
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        do_sample=False, max_new_tokens=32)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    report = {"builder_version": BUILDER_VERSION, "fingerprint": cfg.fingerprint(),
              "config": dataclasses.asdict(cfg), "pretraining": stats,
              "n_parameters": sum(p.numel() for p in model.parameters())}
    (out / REPORT_FILE).write_text(json.dumps(report, indent=2))
    return out


def greedy_accuracy(path: str | os.PathLike, families=synthetic.BASE_FAMILIES, n: int = 20,
                    seed: int = 1234, adapter: str | os.PathLike | None = None) -> dict[str, float]:
    """Exact-match rate per family with greedy decoding (a quick check of what a model knows)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(path)
    if adapter is not None:
        from peft import PeftModel
        model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()
    result = {}
    for family in families:
        rows = synthetic.generate([family], n, seed)
        prompts = [tokenizer.apply_chat_template([{"role": "user", "content": r["instruction"]}],
                                                 tokenize=False, add_generation_prompt=True)
                   for r in rows]
        enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=16, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
        texts = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        result[family] = sum(t.strip() == r["response"] for t, r in zip(texts, rows, strict=True)) / len(rows)
    return result
