"""Where the Train page finds the training library's pieces (they may move while it grows)."""

from __future__ import annotations

from studio.ui.context import lib_first

CONFIG = (("training.config", "TrainConfig"), ("training.train", "TrainConfig"),
          ("training.lora", "TrainConfig"), ("training", "TrainConfig"))
LAUNCH = (("training.launcher", "launch_training"), ("training.jobs", "launch_train"), ("training.jobs", "start_train"),
          ("training.jobs", "submit_train"))
CANCEL = (("training.jobs", "cancel"),)
RESUME = (("training.jobs", "resume"),)


def train_config_cls():
    return lib_first(*CONFIG)


def launcher():
    return lib_first(*LAUNCH)


def canceller():
    return lib_first(*CANCEL)


def resumer():
    return lib_first(*RESUME)


ESSENTIALS = ("base_model", "dataset", "name", "max_steps", "num_epochs", "learning_rate",
              "batch_size", "lora_r", "lora_alpha")


def field_choices(datasets: list[str], models: list[str]) -> dict[str, list]:
    """Fields whose valid values are a known list: selectboxes instead of free text."""
    choices: dict[str, list] = {"dataset": datasets, "base_model": models}
    for field_name, const in (("lora_r", "VLLM_LORA_RANKS"), ("lr_scheduler", "SCHEDULES"),
                              ("precision", "PRECISIONS")):
        values = lib_first(("training.config", const))
        if values:
            choices[field_name] = list(values)
    return choices


def model_choices(models_dir) -> list[str]:
    """Models built in this workspace (e.g. the offline tiny model) as base-model suggestions."""
    if not models_dir.exists():
        return []
    return sorted(str(p) for p in models_dir.iterdir() if (p / "config.json").exists())
