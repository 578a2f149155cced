"""`studio model import/list/show` and name resolution, on the real tiny model folder.

Each bad input must be a one-line error that leaves `models/` (hidden temporary folders
included) and the `models` table exactly as they were.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from kernel.errors import StudioError
from studio.cli import main
from training import models as M


def run(capsys, ws: Path, *args: str) -> tuple[int, str, str]:
    code = 0
    try:
        main(["--workspace", str(ws), *args])
    except SystemExit as exc:
        code = exc.code or 0
    out, err = capsys.readouterr()
    return code, out, err


def error_line(err: str) -> str:
    """The one `error: ...` line (progress lines may precede it on stderr)."""
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and err.rstrip("\n").endswith(lines[0]), err
    return lines[0]


def models_dir_entries(ws: Path) -> list[str]:
    folder = ws / "models"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_import_hf_folder_then_list_and_show(capsys, tmp_path, tiny_model):
    ws = tmp_path / "ws"
    code, out, err = run(capsys, ws, "model", "import", str(tiny_model), "--name", "tiny", "--json")
    assert code == 0, err
    info = json.loads(out)
    folder = ws / "models" / "tiny"
    assert info["path"] == str(folder.resolve()) and info["source_kind"] == "hf-folder"
    assert info["architecture"] == "LlamaForCausalLM" and info["template_source"] == "model"
    report = json.loads((tiny_model / "tiny_model.json").read_text())
    assert info["n_parameters"] == report["n_parameters"]
    assert info["context_length"] == json.loads((tiny_model / "config.json").read_text())[
        "max_position_embeddings"]
    assert info["eos_token"] == "<|eos|>" and "<|assistant|>" in info["chat_template"]
    # a standard HF folder: safetensors in float32, tokenizer with the template
    assert (folder / "model.safetensors").exists() and (folder / "tokenizer.json").exists()
    assert json.loads((folder / "config.json").read_text())["dtype"] == "float32"
    assert models_dir_entries(ws) == ["tiny"]  # no temporary folder left
    info_hash = info["content_hash"]
    (folder / "studio_model.json").rename(tmp_path / "moved.json")
    assert M.folder_hash(folder) == info_hash  # hash of what was written (before the record file)

    code, out, _ = run(capsys, ws, "model", "list", "--json")
    assert [m["name"] for m in json.loads(out)] == ["tiny"]
    code, out, _ = run(capsys, ws, "model", "list")
    assert code == 0 and "tiny" in out and "LlamaForCausalLM" in out
    code, out, _ = run(capsys, ws, "model", "show", "tiny", "--json")
    assert json.loads(out)["content_hash"] == info_hash
    code, _, err = run(capsys, ws, "model", "show", "nope")
    assert code == 1 and "model 'nope' not found" in err and "tiny" in err


def test_imported_model_loads_and_generates_like_the_source(store, tiny_model):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    info = M.import_model(store, str(tiny_model), name="copy")
    ids = AutoTokenizer.from_pretrained(info.path)("<|user|>hello<|assistant|>",
                                                   return_tensors="pt").input_ids
    with torch.no_grad():
        a = AutoModelForCausalLM.from_pretrained(info.path)(ids).logits
        b = AutoModelForCausalLM.from_pretrained(str(tiny_model))(ids).logits
    assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("case,message", [
    ("text-file", "neither a GGUF file nor an HF model folder"),
    ("empty-folder", "neither a GGUF file nor an HF model folder"),
    ("bad-gguf", "transformers cannot read this GGUF file"),
    ("masked-lm", "architecture BertForMaskedLM (model_type 'bert') is not a causal language model"),
    ("unknown-type", "config.json cannot be read by transformers"),
    ("missing", "no such file or folder"),
    ("bad-name", "model name 'bad name!'"),
])
def test_bad_sources_are_one_line_errors_and_leave_nothing(capsys, tmp_path, tiny_model, case,
                                                           message):
    ws = tmp_path / "ws"
    source, extra = tmp_path / "src", []
    if case == "text-file":
        source = tmp_path / "notes.txt"
        source.write_text("just some text\n")
    elif case == "empty-folder":
        source.mkdir()
    elif case == "bad-gguf":
        source = tmp_path / "broken.gguf"
        source.write_bytes(b"GGUF" + b"\x00" * 64)
    elif case in ("masked-lm", "unknown-type"):
        copy_model(tiny_model, source)
        config = json.loads((source / "config.json").read_text())
        config.update({"model_type": "bert", "architectures": ["BertForMaskedLM"]}
                      if case == "masked-lm" else {"model_type": "no-such-arch"})
        (source / "config.json").write_text(json.dumps(config))
    elif case == "missing":
        source = tmp_path / "nowhere" / "model.gguf"
    elif case == "bad-name":
        source, extra = tiny_model, ["--name", "bad name!"]
    code, out, err = run(capsys, ws, "model", "import", str(source), *extra)
    assert code == 1 and out == ""
    assert message in error_line(err)
    assert models_dir_entries(ws) == []
    code, out, _ = run(capsys, ws, "model", "list", "--json")
    assert json.loads(out) == []


def test_existing_name_is_refused_and_the_first_import_stays(capsys, tmp_path, tiny_model):
    ws = tmp_path / "ws"
    assert run(capsys, ws, "model", "import", str(tiny_model), "--name", "m")[0] == 0
    before = M.folder_hash(ws / "models" / "m")
    code, _, err = run(capsys, ws, "model", "import", str(tiny_model), "--name", "m")
    assert code == 1 and "model 'm' already exists" in error_line(err)
    assert models_dir_entries(ws) == ["m"] and M.folder_hash(ws / "models" / "m") == before
    # a stray folder of that name (not recorded) is not overwritten either
    (ws / "models" / "other").mkdir()
    code, _, err = run(capsys, ws, "model", "import", str(tiny_model), "--name", "other")
    assert code == 1 and "already exists" in err


def test_model_without_chat_template_gets_the_named_builtin_one(capsys, tmp_path, tiny_model):
    from transformers import AutoTokenizer

    from training.formatting import FALLBACK_CHAT_TEMPLATE

    source = copy_model(tiny_model, tmp_path / "no-template")
    (source / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((source / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (source / "tokenizer_config.json").write_text(json.dumps(config))
    assert not AutoTokenizer.from_pretrained(source).chat_template  # really has none
    ws = tmp_path / "ws"
    code, out, err = run(capsys, ws, "model", "import", str(source), "--json")
    assert code == 0, err
    assert "no chat template; using the studio's built-in '### User:/### Assistant:' template" in err
    info = json.loads(out)
    assert info["name"] == "no-template" and info["template_source"] == "built-in"
    assert AutoTokenizer.from_pretrained(info["path"]).chat_template == FALLBACK_CHAT_TEMPLATE


def test_failure_while_writing_leaves_nothing(store, tiny_model, monkeypatch):
    def broken(folder):
        assert any(folder.iterdir())  # the model was being written when it failed
        raise OSError("disk full")

    monkeypatch.setattr(M, "folder_hash", broken)
    with pytest.raises(OSError, match="disk full"):
        M.import_model(store, str(tiny_model), name="half")
    assert models_dir_entries(store.workspace.root) == []
    assert M.list_models(store) == []


def test_hub_name_offline_fails_fast_with_a_clear_message(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # nothing cached
    t0 = time.monotonic()
    code, _, err = run(capsys, tmp_path / "ws", "model", "import", "Qwen/Qwen2.5-0.5B-Instruct")
    assert code == 1 and "the model hub cannot be reached" in error_line(err)
    assert time.monotonic() - t0 < 30  # no retry loop (huggingface_hub's would take minutes)
    assert models_dir_entries(tmp_path / "ws") == []


def test_hub_check_without_the_env_var_uses_a_short_connection_attempt(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(M, "HUB_HOST", "127.0.0.1")
    monkeypatch.setattr(M, "HUB_PORT", 9)  # discard port: nothing listens, refused at once
    assert M.hub_reachable(timeout_s=2.0) is False
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert M.hub_reachable() is False


def test_offline_model_needs_its_package(store, monkeypatch):
    monkeypatch.setitem(M.OFFLINE_MODELS, "fake-offline", ("no_such_package_xyz", "m.gguf"))
    with pytest.raises(StudioError, match="needs the no-such-package-xyz package.*--no-deps"):
        M.import_model(store, "fake-offline")


def test_a_model_name_works_wherever_a_base_model_is_asked_for(store, tiny_model, tmp_path):
    from curation.importer import import_file
    from curation.scoring import score
    from training.checkpoints import resolve
    from training.checkpoints import resolve as resolve_model
    from training.config import TrainConfig
    from training.start_run import prepare_training

    info = M.import_model(store, str(tiny_model), name="base-m")
    assert M.resolve_base_model(store, "base-m") == info.path
    assert M.resolve_base_model(store.workspace, "base-m") == info.path
    assert M.resolve_base_model(store, "Qwen/Qwen2.5-0.5B-Instruct") == "Qwen/Qwen2.5-0.5B-Instruct"
    assert M.resolve_base_model(store, str(tiny_model)) == str(tiny_model)
    # eval checkpoints: base:NAME
    assert resolve_model(store, "base:base-m").base_model == info.path
    ref = resolve(store, "base:base-m")
    assert ref.base_model == info.path and ref.eos_token == "<|eos|>"
    # train
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({"instruction": f"say {w}", "response": w}) + "\n"
                            for w in ["cat", "dog", "sun", "sky", "red", "big"]))
    cfg = TrainConfig(base_model="base-m", data_file=str(data), max_steps=1, eval_fraction=0)
    resolved, train, _ = prepare_training(store, cfg)
    assert resolved.base_model == info.path and len(train) == 6
    # score --model NAME
    import_file(store, data, "rows")
    got = score(store, "rows", "perplexity", model="base-m", max_length=64)
    assert got["n_rows"] == 6
    values = store.query("SELECT value FROM scores WHERE name = 'ppl'")
    assert len(values) == 6 and all(v["value"] > 1 for v in values)
    # a recorded model whose folder vanished is a clear error, not a silent fallback
    shutil.rmtree(info.path)
    with pytest.raises(StudioError, match="recorded but its folder"):
        M.resolve_base_model(store, "base-m")
