"""The offline tiny base model: standard HF layout, chat template, determinism, learnt skills."""

from __future__ import annotations

import json

import pytest
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from kernel.errors import StudioError
from training.tiny_model import TinyModelConfig, build_tiny_model, greedy_accuracy


def test_loads_like_any_hf_model(tiny_model):
    config = AutoConfig.from_pretrained(tiny_model)
    assert config.model_type == "llama" and config.head_dim == 32 and config.tie_word_embeddings
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (128, 4, 4)
    assert (tiny_model / "model.safetensors").exists()
    tok = AutoTokenizer.from_pretrained(tiny_model)
    assert tok.eos_token == "<|eos|>" and tok.pad_token == "<|pad|>"
    assert config.eos_token_id == tok.eos_token_id
    text = tok.apply_chat_template([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
                                   tokenize=False, add_generation_prompt=True)
    assert text == "<|system|>s<|user|>u<|assistant|>"
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    assert 0.5e6 < sum(p.numel() for p in model.parameters()) < 2e6


@pytest.mark.slow
def test_pretraining_taught_base_tasks_only(tiny_model):
    base = greedy_accuracy(tiny_model, families=("reverse", "capitals"), n=16)
    unseen = greedy_accuracy(tiny_model, families=("repeat_twice",), n=16)
    assert max(base.values()) >= 0.5, base
    assert unseen["repeat_twice"] == 0.0


@pytest.mark.slow
def test_build_is_deterministic_for_a_seed(tmp_path):
    cfg = TinyModelConfig(pretrain_steps=3, n_examples=200)
    a = build_tiny_model(tmp_path / "a", cfg)
    b = build_tiny_model(tmp_path / "b", cfg)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert (a / "tokenizer.json").read_text() == (b / "tokenizer.json").read_text()
    report = json.loads((a / "tiny_model.json").read_text())
    assert report["fingerprint"] == cfg.fingerprint() and report["config"]["pretrain_steps"] == 3
    other = build_tiny_model(tmp_path / "c", TinyModelConfig(pretrain_steps=3, n_examples=200, seed=1))
    assert (other / "model.safetensors").read_bytes() != (a / "model.safetensors").read_bytes()


def test_fingerprint_covers_every_field():
    base = TinyModelConfig()
    assert base.fingerprint() == TinyModelConfig().fingerprint()
    assert base.fingerprint() != TinyModelConfig(pretrain_steps=10).fingerprint()
    assert base.fingerprint() != TinyModelConfig(seed=1).fingerprint()


def test_bad_shapes_are_rejected():
    with pytest.raises(StudioError, match="head_dim must be >= 32"):
        TinyModelConfig(head_dim=16)
    with pytest.raises(StudioError, match="pretrain_steps"):
        TinyModelConfig(pretrain_steps=-1)


@pytest.mark.slow
def test_cli_build_tiny(tmp_path, capsys):
    from studio.cli import main as studio_main

    studio_main(["--workspace", str(tmp_path / "ws"), "model", "build-tiny", str(tmp_path / "m"),
                 "--steps", "2", "--seed", "3", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["path"] == str((tmp_path / "m").resolve()) and out["config"]["seed"] == 3
    assert AutoConfig.from_pretrained(out["path"]).head_dim == 32
