"""Small offline models for the evals tests and benches: a random tiny Llama and LoRA adapters.

Why: evals must be testable before (and independently of) training's tiny model. The model is
random but deterministic (seeded) with a large init scale so greedy decoding is far from ties,
which keeps HF-vs-vLLM comparisons meaningful. Adapters are real peft LoRA adapters whose B
matrices are perturbed so they change outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}<|user|>{{ m['content'] }}"
    "{% elif m['role'] == 'assistant' %}<|assistant|>{{ m['content'] }}<|eos|>{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
SPECIALS = ["<|pad|>", "<|eos|>", "<|user|>", "<|assistant|>"]
_WORDS = ["apple", "river", "stone", "cloud", "tiger", "lemon", "piano", "rocket", "violet",
          "garden", "candle", "mirror", "silver", "window", "forest", "pepper", "yellow",
          "orange", "purple", "summer"]


def _corpus() -> list[str]:
    lines = []
    for i, w in enumerate(_WORDS):
        lines.append(f"reverse {w}: {w[::-1]}")
        lines.append(f"capitals {w}: {w.upper()}")
        lines.append(f"add {i} and {i + 7}: {2 * i + 7}")
    return lines * 5


def build_random_tiny_model(path: str | Path, seed: int = 0, init_std: float = 0.25) -> Path:
    """Write a random LlamaForCausalLM (hidden 128, 4 layers, 4 heads x 32) + BPE tokenizer."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus(), trainer)
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|pad|>",
                                     eos_token="<|eos|>", padding_side="left")
    hf_tok.chat_template = CHAT_TEMPLATE
    hf_tok.save_pretrained(path)

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(hf_tok), hidden_size=128, intermediate_size=384,
                      num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4,
                      head_dim=32, max_position_embeddings=256, tie_word_embeddings=True,
                      initializer_range=init_std, pad_token_id=hf_tok.pad_token_id,
                      eos_token_id=hf_tok.eos_token_id, bos_token_id=hf_tok.eos_token_id)
    model = LlamaForCausalLM(cfg).to(torch.float32)
    model.generation_config.pad_token_id = hf_tok.pad_token_id
    model.generation_config.eos_token_id = hf_tok.eos_token_id
    model.save_pretrained(path, safe_serialization=True)
    return path


def make_lora_adapter(base: str | Path, out: str | Path, seed: int = 1, rank: int = 8,
                      scale: float = 0.5) -> Path:
    """A peft LoRA adapter on all attention+MLP projections, perturbed (B != 0) so it matters."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = Path(out)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    cfg = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, task_type="CAUSAL_LM",
                     target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                     "gate_proj", "up_proj", "down_proj"])
    peft_model = get_peft_model(model, cfg)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * scale)
    peft_model.save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    (out / "meta.json").write_text(json.dumps({
        "step": seed, "base_model": str(base), "chat_template": CHAT_TEMPLATE,
        "eos_token": "<|eos|>"}))
    return out


def evaluated_workspace(store, tiny_model: str | Path, folder: str | Path,
                        scales: tuple[float, ...] = (0.8, 0.8)) -> list[str]:
    """A task suite with categories and a general suite, evaluated for real (HF backend) on the
    base model and one perturbed LoRA adapter per scale; returns the checkpoint ids (base
    first). What the Compare page and its tests read."""
    from evals.evaluate import evaluate
    from evals.suites import Suite, save_suite
    from training import synthetic

    folder = Path(folder)
    ckpts = [f"base:{tiny_model}"] + [
        str(make_lora_adapter(tiny_model, folder / f"adapter{i}", seed=3 + i, scale=scale))
        for i, scale in enumerate(scales)]
    for name, role, families in (("task", "task", ["reverse", "capitals"]),
                                 ("general", "general", ["count_letters"])):
        rows = [{**r, "id": f"{name}-{i}"}
                for i, r in enumerate(synthetic.generate(families, 8, seed=5))]
        save_suite(store, Suite(name=name, role=role, metrics=["exact_match", "token_f1"],
                                sampling={"max_new_tokens": 8}, rows=rows))
        evaluate(store, name, ckpts, backend="hf")
    return ckpts
