"""One typed config for a LoRA SFT run: documented defaults, validation, YAML in and out.

Why one dataclass: the CLI flags (generated from the fields, `--lr`-style short names in
`metadata["cli_aliases"]`; `metadata["choices"]` become the form's select boxes), the YAML file, the UI form (it renders these fields and their
`help`) and the run folder (`config.yaml`) all describe the same object. Checks that need no
model live in `__post_init__`; checks that need the model and tokenizer are in
`training.preflight` and run before any job is launched.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kernel.errors import StudioError

# vLLM accepts only these LoRA ranks (max_lora_rank); keeping to them keeps adapters servable.
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
SCHEDULES = ("linear", "cosine", "constant", "constant_with_warmup", "cosine_with_min_lr")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
ALL_LINEAR = "all-linear"
TRACKERS = ("tensorboard", "mlflow", "wandb")  # report_to values (training.tracking)


def _f(default: Any, help: str, **kw) -> Any:
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class TrainConfig:
    """A LoRA supervised fine-tuning run. Every field has a default and a help text."""

    base_model: str = _f("", "HF model name or local folder (standard HF layout).")
    dataset: str = _f("", "Dataset reference NAME or NAME@VERSION in the workspace store.")
    data_file: str = _f("", "JSONL file of rows (messages, or instruction/response); used when no dataset is set.")
    name: str = _f("", "Optional human name for the run.")
    lora_r: int = _f(16, "LoRA rank; one of vLLM's ranks 1, 8, 16, 32, 64, 128, 256, 320, 512.",
                     choices=VLLM_LORA_RANKS)
    lora_alpha: int = _f(32, "LoRA scaling alpha (effective scale alpha / r).")
    lora_dropout: float = _f(0.05, "Dropout on the LoRA input, 0 to <1.")
    target_modules: list[str] = _f([ALL_LINEAR], "Module names to adapt; 'all-linear' = every linear layer of attention and MLP (not lm_head).")
    learning_rate: float = _f(1e-3, "Peak learning rate (1e-3 suits the tiny model; ~2e-4 for 0.5B+ models).",
                              cli_aliases=("lr",))
    lr_scheduler: str = _f("cosine", "Schedule: linear, cosine, constant, constant_with_warmup, cosine_with_min_lr.",
                           choices=SCHEDULES)
    warmup_ratio: float = _f(0.05, "Fraction of steps spent warming up the learning rate.")
    weight_decay: float = _f(0.0, "AdamW weight decay.")
    max_grad_norm: float = _f(1.0, "Gradient clipping norm.")
    num_epochs: float = _f(1.0, "Epochs over the training split (ignored when max_steps > 0).",
                           cli_aliases=("epochs",))
    max_steps: int = _f(-1, "Optimizer steps; > 0 overrides num_epochs.")
    batch_size: int = _f(16, "Examples per device per step (per pack when packing).")
    grad_accum: int = _f(1, "Gradient accumulation steps.")
    max_seq_len: int = _f(0, "Longest sequence in tokens; 0 = the model's maximum, capped at 2048.")
    seed: int = _f(42, "Seed for the split, LoRA init and data order.")
    gradient_checkpointing: bool = _f(False, "Recompute activations to save memory (slower).")
    precision: str = _f("auto", "auto (bf16 where the GPU supports it, else fp32), bf16, fp16 or fp32.",
                        choices=PRECISIONS)
    qlora_4bit: bool = _f(False, "Load the base model in 4-bit (needs bitsandbytes and a CUDA GPU).")
    packing: bool = _f(True, "Pack short examples into max_seq_len rows, no attention across examples.")
    completion_only: bool = _f(True, "Loss on assistant tokens only (prompt tokens masked).")
    eval_fraction: float = _f(0.1, "Share of training rows held out for eval loss (0 = no eval).")
    eval_steps: int = _f(50, "Evaluate every N steps (and at the end).")
    early_stopping_patience: int = _f(0, "Stop after N evals without improvement (0 = off).")
    save_steps: int = _f(50, "Save a checkpoint every N steps (and at the end).")
    logging_steps: int = _f(5, "Write a metrics line every N steps.")
    trust_remote_code: bool = _f(False, "Allow model code from the model folder (off unless you trust it).")
    report_to: list[str] = _f(["tensorboard"], "Trackers besides metrics.jsonl: tensorboard (RUN/tensorboard), mlflow (<workspace>/mlruns or $MLFLOW_TRACKING_URI), wandb (if installed); none = no tracker.")

    def __post_init__(self) -> None:
        self.target_modules = _as_list(self.target_modules)
        self.report_to = [t for t in _as_list(self.report_to) if t != "none"]
        problems = [*_lora_problems(self), *_schedule_problems(self), *_eval_problems(self),
                    *_tracking_problems(self)]
        if problems:
            raise StudioError("invalid training config: " + "; ".join(problems))

    # --- YAML -----------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> TrainConfig:
        """Build from a mapping; unknown keys are an error naming the source and key."""
        if not isinstance(data, dict):
            raise StudioError(f"{source}: expected a mapping of config fields, got {type(data).__name__}")
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise StudioError(f"{source}: unknown field(s) {unknown}; known: {sorted(known)}")
        return cls(**{k: _coerce(known[k], v, source) for k, v in data.items()})

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: dict | None = None) -> TrainConfig:
        """Load YAML, then apply `overrides` (CLI flags; None values are ignored)."""
        path = Path(path)
        if not path.exists():
            raise StudioError(f"config file {path} does not exist")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise StudioError(f"{path}: not valid YAML ({exc})") from exc
        if not isinstance(data, dict):
            raise StudioError(f"{path}: expected a mapping of config fields")
        data.update({k: v for k, v in (overrides or {}).items() if v is not None})
        return cls.from_dict(data, source=str(path))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self, path: str | Path | None = None) -> str:
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return list(value or [])


def _coerce(f: dataclasses.Field, value: Any, source: str) -> Any:
    """YAML gives ints for floats ('1' for 1e-3 style fields) and strings for lists: normalise."""
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
    try:
        if kind == "float" and isinstance(value, (int, float, str)) and not isinstance(value, bool):
            return float(value)
        if kind == "int" and isinstance(value, (int, str)) and not isinstance(value, bool):
            return int(value)
    except ValueError as exc:
        raise StudioError(f"{source}: field {f.name}: {value!r} is not a {kind}") from exc
    return value


def _lora_problems(c: TrainConfig):
    if c.lora_r <= 0:
        yield f"lora_r must be > 0, got {c.lora_r}"
    elif c.lora_r not in VLLM_LORA_RANKS:
        yield f"lora_r {c.lora_r} is not a rank vLLM can serve; use one of {list(VLLM_LORA_RANKS)}"
    if c.lora_alpha <= 0:
        yield f"lora_alpha must be > 0, got {c.lora_alpha}"
    if not 0 <= c.lora_dropout < 1:
        yield f"lora_dropout must be in [0, 1), got {c.lora_dropout}"
    if not c.target_modules:
        yield "target_modules is empty"


def _schedule_problems(c: TrainConfig):
    if c.learning_rate <= 0:
        yield f"learning_rate must be > 0, got {c.learning_rate}"
    if c.lr_scheduler not in SCHEDULES:
        yield f"lr_scheduler {c.lr_scheduler!r} is not one of {list(SCHEDULES)}"
    if not 0 <= c.warmup_ratio < 1:
        yield f"warmup_ratio must be in [0, 1), got {c.warmup_ratio}"
    if c.weight_decay < 0 or c.max_grad_norm <= 0:
        yield "weight_decay must be >= 0 and max_grad_norm > 0"
    if c.max_steps <= 0 and c.num_epochs <= 0:
        yield "set num_epochs > 0 or max_steps > 0"
    for name in ("batch_size", "grad_accum", "eval_steps", "save_steps", "logging_steps"):
        if getattr(c, name) <= 0:
            yield f"{name} must be > 0, got {getattr(c, name)}"
    if c.max_seq_len < 0:
        yield f"max_seq_len must be >= 0 (0 = model maximum), got {c.max_seq_len}"
    if c.precision not in PRECISIONS:
        yield f"precision {c.precision!r} is not one of {list(PRECISIONS)}"


def _eval_problems(c: TrainConfig):
    if not 0 <= c.eval_fraction < 1:
        yield f"eval_fraction must be in [0, 1), got {c.eval_fraction}"
    if c.early_stopping_patience < 0:
        yield f"early_stopping_patience must be >= 0, got {c.early_stopping_patience}"
    if c.early_stopping_patience and c.eval_fraction == 0:
        yield "early stopping needs an eval split (eval_fraction > 0)"


def _tracking_problems(c: TrainConfig):
    unknown = [t for t in c.report_to if t not in TRACKERS]
    if unknown:
        yield f"report_to {unknown} is not among {list(TRACKERS)} (or 'none')"
