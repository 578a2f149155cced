"""A real LoRA run in-process on the tiny model: loss falls, checkpoints are complete and reload."""

from __future__ import annotations

import json

import pytest
import torch

from kernel.status import read_metrics
from training import synthetic
from training.config import VLLM_LORA_RANKS, TrainConfig
from training.data import split_rows
from training.preflight import preflight
from training.trainer import build_trainer


@pytest.fixture(scope="module")
def trained(tiny_model, tmp_path_factory):
    """30 LoRA steps on a task the base model never saw, with eval every 10 steps."""
    import os

    os.environ.setdefault("STUDIO_TORCH_THREADS", "1")  # the test machine's cores are shared
    run_dir = tmp_path_factory.mktemp("run")
    rows = synthetic.generate(["repeat_twice"], 200, seed=0)
    cfg = preflight(TrainConfig(base_model=str(tiny_model), data_file="x", max_steps=30,
                                eval_steps=10, save_steps=15, logging_steps=5, batch_size=16,
                                eval_fraction=0.1, lora_dropout=0.0))
    train, evals = split_rows(rows, cfg.eval_fraction, cfg.seed)
    trainer = build_trainer(cfg, run_dir, train, evals)
    trainer.train()
    return run_dir, trainer, cfg


@pytest.mark.slow
def test_held_out_loss_falls_and_metrics_are_written(trained):
    run_dir, _, _ = trained
    records = read_metrics(run_dir)
    evals = [r["eval_loss"] for r in records if "eval_loss" in r]
    assert len(evals) == 3 and evals[-1] < evals[0] - 0.3
    train = [r for r in records if "loss" in r]
    assert {"step", "loss", "lr", "grad_norm", "tokens_per_s", "progress", "eta_s", "epoch"} <= set(train[-1])
    assert train[-1]["tokens_per_s"] > 0 and train[-1]["progress"] == 1.0


@pytest.mark.slow
def test_checkpoints_are_complete_and_vllm_compatible(trained):
    run_dir, _, cfg = trained
    steps = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert steps == ["step-15", "step-30"]
    ckpt = run_dir / "checkpoints" / "step-30"
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "meta.json"):
        assert (ckpt / name).exists(), name
    meta = json.loads((ckpt / "meta.json").read_text())
    assert meta["step"] == 30 and meta["eos_token"] == "<|eos|>"
    assert "<|assistant|>" in meta["chat_template"] and meta["base_model"] == cfg.base_model
    adapter = json.loads((ckpt / "adapter_config.json").read_text())
    assert adapter["r"] in VLLM_LORA_RANKS and not adapter.get("modules_to_save")
    assert set(adapter["target_modules"]) == set(cfg.target_modules)
    assert (run_dir / "hf" / "checkpoint-30" / "optimizer.pt").exists()  # what resume needs
    recorded = json.loads((run_dir / "chat_template.json").read_text())
    assert recorded == {"chat_template": meta["chat_template"], "eos_token": "<|eos|>"}


@pytest.mark.slow
def test_adapter_reloads_to_the_same_outputs(trained, tiny_model):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run_dir, trainer, _ = trained
    ckpt = run_dir / "checkpoints" / "step-30"
    tok = AutoTokenizer.from_pretrained(ckpt)
    prompt = tok.apply_chat_template([{"role": "user", "content": "say tiger two times"}],
                                     tokenize=False, add_generation_prompt=True)
    ids = tok(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
    live = trainer.model.eval()
    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), ckpt).eval()
    base = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    with torch.no_grad():
        a, b, c = (m(input_ids=ids).logits for m in (live, reloaded, base))
        out_live = live.generate(input_ids=ids, max_new_tokens=8, do_sample=False)
        out_reloaded = reloaded.generate(input_ids=ids, max_new_tokens=8, do_sample=False)
    assert torch.allclose(a, b, atol=1e-5)
    assert not torch.allclose(b, c, atol=1e-3), "the adapter must change the outputs"
    assert out_live.tolist() == out_reloaded.tolist()


@pytest.mark.slow
def test_early_stopping_ends_a_diverging_run(tiny_model, tmp_path):
    rows = synthetic.generate(["repeat_twice"], 60, seed=0)
    cfg = preflight(TrainConfig(base_model=str(tiny_model), data_file="x", max_steps=12,
                                learning_rate=0.05, eval_steps=2, save_steps=3,
                                early_stopping_patience=1, eval_fraction=0.2, logging_steps=1))
    train, evals = split_rows(rows, cfg.eval_fraction, cfg.seed)
    result = build_trainer(cfg, tmp_path, train, evals).train()
    losses = [r["eval_loss"] for r in read_metrics(tmp_path) if "eval_loss" in r]
    assert result.global_step < 12 and losses[-1] >= min(losses)
