"""Trainer callback: live metrics to `metrics.jsonl`/`status.json`, checkpoints for evals.

Each checkpoint `checkpoints/step-<N>/` is self-contained for inference: the PEFT adapter
(safetensors, no modules_to_save, so vLLM loads it), the tokenizer with the exact chat
template used in training, and `meta.json` {step, base_model, metrics, chat_template, eos_token}.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from transformers import TrainerCallback

from kernel import status as st
from kernel.status import CHECKPOINTS_DIR, META_FILE
from training import halving, provenance

_KEYS = {"loss": "loss", "learning_rate": "lr", "grad_norm": "grad_norm", "eval_loss": "eval_loss"}


def checkpoint_dir(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINTS_DIR / f"step-{step}"


class StudioCallback(TrainerCallback):
    def __init__(self, run_dir, cfg, tokenizer, counter, write_files: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.counter = counter
        self.write_files = write_files
        self.train_time = 0.0
        self._step_t0 = None
        self._last = (0, 0.0)  # (tokens, train_time) at the previous train log
        self._t_start = time.perf_counter()
        self._start_step = 0
        self.last_metrics: dict = {}
        self.records: list[dict] = []

    # --- timing ---------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, **kwargs):
        self._t_start = time.perf_counter()
        self._start_step = state.global_step

    def on_step_begin(self, args, state, control, **kwargs):
        self._step_t0 = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self._step_t0 is not None:
            self.train_time += time.perf_counter() - self._step_t0
            self._step_t0 = None

    # --- metrics --------------------------------------------------------------------------
    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        record = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4), "time": time.time()}
        record.update({short: float(logs[key]) for key, short in _KEYS.items() if key in logs})
        if "loss" in logs:
            tokens, seconds = self.counter.tokens - self._last[0], self.train_time - self._last[1]
            record["tokens_per_s"] = round(tokens / seconds, 1) if seconds > 0 else None
            record["tokens"] = self.counter.tokens
            self._last = (self.counter.tokens, self.train_time)
        if "train_runtime" in logs:
            record["train_runtime"] = float(logs["train_runtime"])
        record["progress"] = round(state.global_step / max(1, state.max_steps), 4)
        done = state.global_step - self._start_step
        elapsed = time.perf_counter() - self._t_start
        remaining = state.max_steps - state.global_step
        record["eta_s"] = round(elapsed / done * remaining, 1) if done > 0 else None
        self.last_metrics.update({k: v for k, v in record.items() if k in _KEYS.values()})
        self.records.append(record)
        if self.write_files and state.is_world_process_zero:
            st.append_metrics(self.run_dir, record)
            st.write_status(self.run_dir, progress=record["progress"], step=state.global_step,
                            max_steps=state.max_steps, eta_s=record["eta_s"],
                            metrics=self.last_metrics)

    # --- checkpoints ----------------------------------------------------------------------
    def on_save(self, args, state, control, model=None, **kwargs):
        if self.write_files and model is not None and state.is_world_process_zero:
            save_checkpoint(self.run_dir, state.global_step, model, self.tokenizer, self.cfg,
                            dict(self.last_metrics))

    def on_train_end(self, args, state, control, model=None, **kwargs):
        final = checkpoint_dir(self.run_dir, state.global_step)
        if (self.write_files and model is not None and state.is_world_process_zero
                and not (final / META_FILE).exists()):
            save_checkpoint(self.run_dir, state.global_step, model, self.tokenizer, self.cfg,
                            dict(self.last_metrics))


class HalvingCallback(TrainerCallback):
    """A run of a successive-halving sweep stops itself after an evaluation that ranks it
    outside the best 1/eta at a rung (`training.halving.decide`); rank 0 records why."""

    def __init__(self, run_dir, group: str, eta: int) -> None:
        self.run_dir, self.group, self.eta = Path(run_dir), group, int(eta)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if not metrics or metrics.get("eval_loss") is None:
            return
        stop = halving.decide(self.run_dir, self.group, self.eta, state.global_step,
                              metrics["eval_loss"], state.max_steps)
        if stop is None:
            return
        control.should_training_stop = True  # every rank stops; on_train_end saves the adapter
        if state.is_world_process_zero:
            st.write_status(self.run_dir, **{halving.STOP_KEY: stop})
            print(f"[train] {stop['note']}", flush=True)


def halving_callbacks(run_dir) -> list:
    """[HalvingCallback] for a run of a halving sweep (it has `halving.json`), else []."""
    settings = halving.read_settings(run_dir)
    return [HalvingCallback(run_dir, settings["group"], settings["eta"])] if settings else []


def save_checkpoint(run_dir, step: int, model, tokenizer, cfg, metrics: dict) -> Path:
    """Adapter + tokenizer + meta.json; meta.json is written last (it marks a complete folder)."""
    out = checkpoint_dir(run_dir, step)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    meta = {"step": step, "base_model": cfg.base_model, "metrics": metrics,
            "chat_template": tokenizer.chat_template, "eos_token": tokenizer.eos_token,
            "lora_r": cfg.lora_r, "target_modules": list(cfg.target_modules),
            "created_at": time.time()}
    meta["provenance"] = provenance.read(run_dir) or None  # dataset version, hashes, code
    tmp = out / f".{META_FILE}.tmp"
    tmp.write_text(json.dumps(meta, indent=2))
    tmp.replace(out / META_FILE)
    return out
