"""One parser and one resolver of checkpoint ids (training.checkpoints), used by CLI, UI and evals."""

from __future__ import annotations

import pytest

from kernel.errors import NotFoundError
from training.checkpoints import (
    CheckpointId,
    base_checkpoint_id,
    parse_checkpoint_id,
    resolve,
)


def test_parse_checkpoint_ids():
    assert parse_checkpoint_id("train-20261203-1200-ab12/step-300") == CheckpointId(
        run_id="train-20261203-1200-ab12", step=300)
    assert parse_checkpoint_id("base:/models/tiny") == CheckpointId(base_model="/models/tiny")
    assert parse_checkpoint_id(base_checkpoint_id("org/name")) == CheckpointId(base_model="org/name")
    # folders and other strings are not ids (the resolver then tries them as folders)
    for other in ("runs/x/checkpoints/step-3", "run/step-", "run/step-3a", "/abs/folder"):
        assert parse_checkpoint_id(other) is None
    with pytest.raises(NotFoundError, match="names no model"):
        parse_checkpoint_id("base:")


def test_resolve_base_ids_and_folders_without_a_store(tiny_model, tmp_path):
    from tests.helpers.fixtures import make_lora_adapter

    base = resolve(None, f"base:{tiny_model}")
    assert base.adapter_path is None and base.base_model == str(tiny_model.resolve())
    assert base.chat_template and base.name == f"base:{tiny_model}"
    adapter = make_lora_adapter(tiny_model, tmp_path / "ad", seed=2)
    lora = resolve(None, str(adapter))
    assert lora.adapter_path == str(adapter.resolve())
    assert resolve(None, f"base:{adapter}").adapter_path is None  # its base model, no adapter
    assert resolve(None, str(tiny_model)).name == f"base:{tiny_model}"
    with pytest.raises(NotFoundError, match="not found"):
        resolve(None, "train-x/step-3")
