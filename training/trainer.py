"""A LoRA SFT run with transformers' Trainer and peft, from a run folder.

Why plain Trainer (not TRL's SFTTrainer): the parts SFTTrainer adds (formatting, completion-only
masking, packing) are done here in a few testable functions with label offsets from the chat
template, so we control exactly what is masked and recorded. The run folder holds everything:
`config.yaml`, `train.jsonl`, `eval.jsonl` in; `metrics.jsonl`, `status.json`,
`checkpoints/step-<N>/` (adapter + tokenizer + meta.json, for evals and vLLM) and `hf/checkpoint-<N>/`
(Trainer state with optimizer, for resume) out.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

from kernel import status as st
from kernel.errors import StudioError
from training import provenance, tracking
from training.collate import PackedCollator, PaddedCollator, TokenCounter
from training.config import TrainConfig
from training.data import EVAL_FILE, TRAIN_FILE, read_jsonl
from training.formatting import encode_row, ensure_chat_template

CONFIG_FILE = "config.yaml"
HF_DIR = "hf"
TEMPLATE_FILE = "chat_template.json"


def torch_threads() -> int:
    """$STUDIO_TORCH_THREADS, else the core count. On a shared, loaded machine 1 thread can be
    many times faster than oversubscribed cores (OpenMP spin-waits); tests set it to 1."""
    value = os.environ.get("STUDIO_TORCH_THREADS")
    return max(1, int(value)) if value and value.isdigit() else max(1, os.cpu_count() or 1)


def is_rank_zero() -> bool:
    """True in a single process and in rank 0 of a torchrun/accelerate launch: the one writer."""
    return int(os.environ.get("RANK", "0")) == 0


def encode_rows(tokenizer, rows: list[dict], cfg: TrainConfig) -> list[dict]:
    """Encoded examples; rows left with no response token after truncation are dropped."""
    out = []
    for row in rows:
        enc = encode_row(tokenizer, row, cfg.max_seq_len)
        labels = enc.labels if cfg.completion_only else list(enc.input_ids)
        if enc.n_response_tokens:
            out.append({"input_ids": enc.input_ids, "labels": labels})
    return out


def pick_precision(cfg: TrainConfig) -> str:
    import torch

    if cfg.precision != "auto":
        return cfg.precision
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


def load_base_model(cfg: TrainConfig, precision: str):
    import torch
    from transformers import AutoModelForCausalLM

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    kwargs = {"dtype": dtype, "trust_remote_code": cfg.trust_remote_code, "attn_implementation": "sdpa"}
    if cfg.qlora_4bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype,
            bnb_4bit_use_double_quant=True)
    model = AutoModelForCausalLM.from_pretrained(cfg.base_model, **kwargs)
    model.config.use_cache = False  # also lets packed position_ids build a block-diagonal mask
    if cfg.qlora_4bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, cfg.gradient_checkpointing)
    return model


def lora_model(model, cfg: TrainConfig):
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=list(cfg.target_modules), bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def total_steps(cfg: TrainConfig, n_train: int) -> int:
    if cfg.max_steps > 0:
        return cfg.max_steps
    per_epoch = max(1, math.ceil(n_train / (cfg.batch_size * cfg.grad_accum)))
    return max(1, math.ceil(per_epoch * cfg.num_epochs))


def training_arguments(cfg: TrainConfig, run_dir: Path, n_train: int, has_eval: bool,
                       precision: str):
    import torch
    from transformers import TrainingArguments

    steps = total_steps(cfg, n_train)
    early = bool(cfg.early_stopping_patience and has_eval)
    save_steps = cfg.save_steps
    if early and save_steps % cfg.eval_steps:
        save_steps = cfg.eval_steps  # load_best_model_at_end needs saves on eval steps
    return TrainingArguments(
        output_dir=str(run_dir / HF_DIR), per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate, lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=int(cfg.warmup_ratio * steps), weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm, num_train_epochs=cfg.num_epochs, max_steps=cfg.max_steps,
        logging_steps=cfg.logging_steps, logging_first_step=True,
        eval_strategy="steps" if has_eval else "no", eval_steps=cfg.eval_steps,
        save_strategy="steps", save_steps=save_steps, save_total_limit=2,
        load_best_model_at_end=early, metric_for_best_model="eval_loss" if early else None,
        greater_is_better=False if early else None,
        seed=cfg.seed, data_seed=cfg.seed, bf16=precision == "bf16", fp16=precision == "fp16",
        gradient_checkpointing=cfg.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False} if cfg.gradient_checkpointing else None,
        report_to="none", run_name=run_dir.name, remove_unused_columns=False, dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(), disable_tqdm=True, save_only_model=False,
    )


def build_trainer(cfg: TrainConfig, run_dir: str | Path, train_rows: list[dict],
                  eval_rows: list[dict], write_files: bool = True):
    """A ready Trainer (LoRA model, data, callbacks). `cfg` must have passed preflight."""
    import torch
    from transformers import Trainer, set_seed

    from training.callbacks import StudioCallback, halving_callbacks
    from training.preflight import load_tokenizer

    run_dir = Path(run_dir)
    torch.set_num_threads(torch_threads())
    set_seed(cfg.seed)
    tokenizer = load_tokenizer(cfg.base_model, cfg.trust_remote_code)
    ensure_chat_template(tokenizer)
    write_files = write_files and is_rank_zero()  # data-parallel: rank 0 writes, others train
    if write_files:  # the exact template + EOS the run trains with (also in every checkpoint)
        (run_dir / TEMPLATE_FILE).write_text(json.dumps(
            {"chat_template": tokenizer.chat_template, "eos_token": tokenizer.eos_token}, indent=2))
    train = encode_rows(tokenizer, train_rows, cfg)
    evals = encode_rows(tokenizer, eval_rows, cfg)
    if not train:
        raise StudioError("no training example keeps a response token within max_seq_len")
    if write_files:
        provenance.record_formatted(run_dir, train)
    precision = pick_precision(cfg)
    model = lora_model(load_base_model(cfg, precision), cfg)
    counter = TokenCounter().attach(model)
    collator = PackedCollator() if cfg.packing else PaddedCollator(tokenizer.pad_token_id)
    args = training_arguments(cfg, run_dir, len(train), bool(evals), precision)
    callbacks = [StudioCallback(run_dir, cfg, tokenizer, counter, write_files=write_files)]
    if write_files:  # TensorBoard / MLflow / W&B as cfg.report_to says (training.tracking)
        callbacks += tracking.callbacks(cfg, run_dir)
    if evals:  # a run of a successive-halving sweep stops itself (training.halving)
        callbacks += halving_callbacks(run_dir)
    if cfg.early_stopping_patience and evals:
        from transformers import EarlyStoppingCallback

        callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience))
    return Trainer(model=model, args=args, train_dataset=train, eval_dataset=evals or None,
                   data_collator=collator, processing_class=tokenizer, callbacks=callbacks)


def latest_hf_checkpoint(run_dir: str | Path) -> str | None:
    """The newest `hf/checkpoint-<N>` with optimizer state, for resume."""
    folders = [p for p in (Path(run_dir) / HF_DIR).glob("checkpoint-*")
               if (p / "trainer_state.json").exists()]
    if not folders:
        return None
    return str(max(folders, key=lambda p: int(p.name.split("-")[-1])))


def run(run_dir: str | Path, resume: bool = False) -> dict:
    """Train from a run folder prepared by `training.start_run`; returns the final metrics."""
    run_dir = Path(run_dir)
    cfg = TrainConfig.from_yaml(run_dir / CONFIG_FILE)
    train_rows = read_jsonl(run_dir / TRAIN_FILE)
    eval_path = run_dir / EVAL_FILE
    eval_rows = read_jsonl(eval_path) if eval_path.exists() and eval_path.stat().st_size else []
    trainer = build_trainer(cfg, run_dir, train_rows, eval_rows)
    checkpoint = latest_hf_checkpoint(run_dir) if resume else None
    if resume:
        print(f"[train] resuming from {checkpoint or 'scratch (no checkpoint yet)'}", flush=True)
    t0 = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=checkpoint)
    summary = {"global_step": result.global_step, "train_loss": result.training_loss,
               "seconds": round(time.perf_counter() - t0, 2)}
    if trainer.is_world_process_zero():
        (run_dir / "result.json").write_text(json.dumps(summary, indent=2))
        st.write_status(run_dir, progress=1.0, step=result.global_step)
    _leave_process_group()
    return summary


def _leave_process_group() -> None:
    """End a torchrun launch's process group once training succeeded, every rank together
    (a barrier first: rank 0 may still be writing its result). Left to interpreter exit,
    Gloo's worker threads can abort a finished rank (SIGABRT, "terminate called without an
    active exception": pytorch/pytorch#179291) and torchrun reports the launch as failed."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
