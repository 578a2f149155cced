"""What the Train page's form offers: which fields come first, and which fields are lists."""

from __future__ import annotations

from training.config import PRECISIONS, SCHEDULES, VLLM_LORA_RANKS

ESSENTIALS = ("base_model", "dataset", "name", "max_steps", "num_epochs", "learning_rate",
              "batch_size", "lora_r", "lora_alpha")


def field_choices(datasets: list[str], models: list[str]) -> dict[str, list]:
    """Fields whose valid values are a known list: selectboxes instead of free text."""
    return {"dataset": datasets, "base_model": models, "lora_r": list(VLLM_LORA_RANKS),
            "lr_scheduler": list(SCHEDULES), "precision": list(PRECISIONS)}
