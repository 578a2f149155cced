"""What the Train page's form offers: which fields come first, and which fields are lists."""

from __future__ import annotations

import dataclasses

from training.config import TrainConfig

ESSENTIALS = ("base_model", "dataset", "name", "max_steps", "num_epochs", "learning_rate",
              "batch_size", "lora_r", "lora_alpha")


def field_choices(datasets: list[str], models: list[str]) -> dict[str, list]:
    """Fields whose valid values are a known list: selectboxes instead of free text. The
    config declares its own (`metadata["choices"]`); the workspace adds datasets and models."""
    choices = {f.name: list(f.metadata["choices"]) for f in dataclasses.fields(TrainConfig)
               if "choices" in f.metadata}
    return {**choices, "dataset": datasets, "base_model": models}
