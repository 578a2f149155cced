"""TrainConfig validation, YAML round trip, and the preflight checks that run before any compute."""

from __future__ import annotations

import json

import pytest

from kernel.errors import NotFoundError, StudioError
from training import synthetic
from training.config import TrainConfig
from training.data import read_jsonl, split_rows, write_jsonl
from training.preflight import preflight
from training.start_run import launch_training, prepare_training


@pytest.mark.parametrize("field,value,message", [
    ("lora_r", 0, "lora_r must be > 0"),
    ("lora_r", -4, "lora_r must be > 0"),
    ("lora_r", 12, "not a rank vLLM can serve"),
    ("learning_rate", -1e-4, "learning_rate must be > 0"),
    ("lora_dropout", 1.5, "lora_dropout"),
    ("lr_scheduler", "zigzag", "lr_scheduler"),
    ("batch_size", 0, "batch_size must be > 0"),
    ("eval_fraction", 1.0, "eval_fraction"),
])
def test_bad_values_raise_studio_error(field, value, message):
    with pytest.raises(StudioError, match=message):
        TrainConfig(**{field: value})


def test_every_field_has_help_and_default():
    import dataclasses

    cfg = TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        assert f.metadata.get("help"), f.name
        assert hasattr(cfg, f.name)


def test_yaml_round_trip_and_flag_overrides(tmp_path):
    cfg = TrainConfig(base_model="m", data_file="d.jsonl", lora_r=8, target_modules=["q_proj", "v_proj"])
    path = tmp_path / "run.yaml"
    cfg.to_yaml(path)
    assert TrainConfig.from_yaml(path) == cfg
    over = TrainConfig.from_yaml(path, {"max_steps": 7, "learning_rate": None, "target_modules": "k_proj,o_proj"})
    assert over.max_steps == 7 and over.learning_rate == cfg.learning_rate
    assert over.target_modules == ["k_proj", "o_proj"]
    path.write_text("learning_rate: 1e-3\nlora_r: '16'\n")  # YAML reads 1e-3 as a string
    loaded = TrainConfig.from_yaml(path)
    assert loaded.learning_rate == 1e-3 and loaded.lora_r == 16


def test_unknown_yaml_field_names_file_and_field(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("base_model: m\nlearning_rat: 0.1\n")
    with pytest.raises(StudioError, match=r"run\.yaml.*learning_rat"):
        TrainConfig.from_yaml(path)


def test_jsonl_errors_name_file_and_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"instruction": "a", "response": "b"}\n{"instruction": "c"}\n')
    with pytest.raises(StudioError, match=r"d\.jsonl:2"):
        read_jsonl(path)
    path.write_text('{"instruction": "a", "response": "b"}\nnot json\n')
    with pytest.raises(StudioError, match=r"d\.jsonl:2: not valid JSON"):
        read_jsonl(path)


def test_split_is_seeded_and_rejects_empty_train():
    rows = [{"id": str(i), "instruction": "x", "response": "y"} for i in range(20)]
    a = split_rows(rows, 0.25, seed=1)
    assert a == split_rows(rows, 0.25, seed=1) and len(a[1]) == 5 and len(a[0]) == 15
    with pytest.raises(StudioError, match="training split is empty"):
        split_rows(rows[:1], 0.5, seed=0)
    with pytest.raises(StudioError, match="no rows"):
        split_rows([], 0.1, seed=0)


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "data.jsonl"
    write_jsonl(path, synthetic.generate(["repeat_twice"], 20, seed=0))
    return path


def test_preflight_resolves_auto_values(tiny_model, data_file):
    cfg, train, evals = prepare_training(None, TrainConfig(base_model=str(tiny_model), data_file=str(data_file)))
    assert cfg.max_seq_len == 256
    assert set(cfg.target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert len(train) == 18 and len(evals) == 2


@pytest.mark.parametrize("change,message", [
    ({"base_model": "/nonexistent/model"}, "no such model folder"),
    ({"base_model": "nobody-org/no-such-model-xyz"}, "unknown model"),
    ({"max_seq_len": 4096}, "above the model's maximum 256"),
    ({"target_modules": ["q_proj", "qkv_fused"]}, r"unknown module name\(s\) \['qkv_fused'\]"),
])
def test_preflight_rejects_bad_model_inputs(tiny_model, data_file, change, message):
    cfg = TrainConfig(**{"base_model": str(tiny_model), "data_file": str(data_file), **change})
    with pytest.raises(StudioError, match=message):
        preflight(cfg)


def test_bad_input_leaves_no_run_behind(store, tiny_model, data_file, tmp_path):
    """Errors come before any job: no run folder, no runs row."""
    one_row = tmp_path / "one.jsonl"
    one_row.write_text(json.dumps({"instruction": "say apple two times", "response": "apple apple"}) + "\n")
    bad = [
        (TrainConfig(base_model=str(tiny_model), data_file=str(one_row), eval_fraction=0.5), "split is empty"),
        (TrainConfig(base_model=str(tiny_model), data_file=str(tmp_path / "missing.jsonl")), "does not exist"),
        (TrainConfig(base_model=str(tiny_model), data_file=str(data_file), max_seq_len=1000), "maximum"),
    ]
    for cfg, message in bad:
        with pytest.raises(StudioError, match=message):
            launch_training(store, cfg)
    assert store.query("SELECT count(*) AS n FROM runs")[0]["n"] == 0
    assert list(store.workspace.runs_dir.iterdir()) == []


def test_unknown_dataset_is_not_found(store, tiny_model):
    with pytest.raises(NotFoundError):
        launch_training(store, TrainConfig(base_model=str(tiny_model), dataset="no_such_dataset@v9"))
    assert list(store.workspace.runs_dir.iterdir()) == []


def test_cli_bad_input_is_one_line_and_exit_1(workspace, tiny_model, data_file, tmp_path, capsys):
    from studio.cli import main as studio_main

    yaml_path = tmp_path / "run.yaml"
    TrainConfig(base_model=str(tiny_model), data_file=str(data_file)).to_yaml(yaml_path)
    cases = [(["--lora-r", "0"], "lora_r must be > 0"),
             (["--lr", "-0.1"], "learning_rate must be > 0"),
             (["--target-modules", "nope_proj"], "unknown module name"),
             (["--base-model", "./no/such/dir"], "no such model folder")]
    for flags, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            studio_main(["--workspace", str(workspace.root), "train", "--config", str(yaml_path), *flags])
        assert exit_info.value.code == 1
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert list(workspace.runs_dir.iterdir()) == []
