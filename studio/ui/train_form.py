"""What the Train page's form offers: which fields come first, which fields are lists, and how
the base-model choices read (names, not paths)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from studio.ui.runs import model_label
from training.config import TrainConfig
from training.listing import is_fine_tune

ESSENTIALS = ("base_model", "dataset", "name", "max_steps", "num_epochs", "learning_rate",
              "batch_size", "lora_r", "lora_alpha")


def field_choices(datasets: list[str], models: list[str]) -> dict[str, list]:
    """Fields whose valid values are a known list: selectboxes instead of free text. The
    config declares its own (`metadata["choices"]`); the workspace adds datasets and models."""
    choices = {f.name: list(f.metadata["choices"]) for f in dataclasses.fields(TrainConfig)
               if "choices" in f.metadata}
    return {**choices, "dataset": datasets, "base_model": models}


def base_model_labels(models: list[str]) -> Callable[[str], str]:
    """Label of a base-model choice: a folder by its name, a merged fine-tune marked as one
    (it is offered last, never as the default)."""
    tuned = {m for m in models if m.startswith("/") and is_fine_tune(m)}

    def label(model: str) -> str:
        name = model_label(str(model))
        return f"{name} (merged fine-tune)" if model in tuned else name

    return label
