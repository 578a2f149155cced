"""`studio train`'s flags are generated from TrainConfig: every field is settable from the
command line and from YAML, and the short names users type today (`--lr`, `--epochs`) work."""

from __future__ import annotations

import dataclasses

import pytest

from studio.cli.training_cmds import train, train_config
from training.config import TrainConfig

# A valid value different from the default, for every field (a new field must be added here).
NON_DEFAULT = {
    "base_model": "org/model", "dataset": "support@v2", "data_file": "rows.jsonl", "name": "run-a",
    "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.1, "target_modules": ["q_proj", "v_proj"],
    "learning_rate": 2e-4, "lr_scheduler": "linear", "warmup_ratio": 0.1, "weight_decay": 0.01,
    "max_grad_norm": 0.5, "num_epochs": 2.5, "max_steps": 10, "batch_size": 4, "grad_accum": 2,
    "max_seq_len": 128, "seed": 7, "gradient_checkpointing": True, "precision": "fp32",
    "qlora_4bit": True, "packing": False, "completion_only": False, "eval_fraction": 0.2,
    "eval_steps": 5, "early_stopping_patience": 2, "save_steps": 5, "logging_steps": 1,
    "trust_remote_code": True, "report_to": ["mlflow"],
}


def parse(args: list[str]) -> TrainConfig:
    """What `studio train ARGS` would launch (parsed by the real command, nothing started)."""
    ctx = train.make_context("train", list(args))
    params = dict(ctx.params)
    return train_config(params.pop("config_path"), params, params.pop("extra"))


def flag(name: str, value) -> list[str]:
    option = "--" + name.replace("_", "-")
    if isinstance(value, bool):
        return [option if value else f"--no-{option[2:]}"]
    if isinstance(value, list):
        return [option, ",".join(value)]
    return [option, str(value)]


def test_the_table_covers_every_field_and_differs_from_the_defaults():
    defaults = TrainConfig()
    assert set(NON_DEFAULT) == {f.name for f in dataclasses.fields(TrainConfig)}
    assert all(getattr(defaults, k) != v for k, v in NON_DEFAULT.items())


@pytest.mark.parametrize("name", sorted(NON_DEFAULT))
def test_every_field_is_settable_from_the_command_line(name):
    cfg = parse(flag(name, NON_DEFAULT[name]))
    assert getattr(cfg, name) == NON_DEFAULT[name]
    others = {k: v for k, v in TrainConfig().to_dict().items() if k != name}
    assert {k: getattr(cfg, k) for k in others} == others  # unset flags change nothing


def test_every_field_is_settable_from_yaml_and_flags_override_it(tmp_path):
    path = tmp_path / "run.yaml"
    TrainConfig(**NON_DEFAULT).to_yaml(path)
    assert parse(["--config", str(path)]).to_dict() == TrainConfig(**NON_DEFAULT).to_dict()
    cfg = parse(["--config", str(path), "--max-steps", "99", "--packing"])
    assert (cfg.max_steps, cfg.packing, cfg.lora_r) == (99, True, 8)


def test_todays_short_names_still_work():
    cfg = parse(["--lr", "3e-4", "--epochs", "3", "--set", "seed=5"])
    assert (cfg.learning_rate, cfg.num_epochs, cfg.seed) == (3e-4, 3.0, 5)
    assert parse(["--learning-rate", "5e-4"]).learning_rate == 5e-4


def test_help_lists_each_field_with_its_help():
    text = train.get_help(train.make_context("train", []))
    for f in dataclasses.fields(TrainConfig):
        assert "--" + f.name.replace("_", "-") in text
    assert "Peak learning rate" in text and "--lr" in text and "--no-packing" in text
