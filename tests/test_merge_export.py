"""Merge + export: a standalone HF folder whose outputs equal base + adapter, with a model card
recording base model, dataset version, config and eval results; --push fails at once offline."""

from __future__ import annotations

import json
import socket

import pytest
import yaml

from curation.importer import import_file
from curation.split import split
from kernel.errors import StudioError
from kernel.store import Store
from kernel.workspace import Workspace
from studio.cli import main as studio_main
from training import synthetic
from training.data import write_jsonl
from training.merge import check_hub_reachable, export_model


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_push_fails_at_once_when_offline_and_writes_nothing(store, tmp_path, monkeypatch, capsys):
    out = tmp_path / "export"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(StudioError, match="--push: offline"):
        export_model(store, "run-x/step-1", out, push="me/model")
    assert not out.exists()
    with pytest.raises(SystemExit) as exit_info:
        studio_main(["--workspace", str(store.workspace.root), "run", "merge", "run-x",
                     "--checkpoint", "step-1", "--out", str(out), "--push", "me/model"])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 1 and err.startswith("error: --push: offline")
    assert len(err.splitlines()) == 1

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(StudioError, match=r"--push: cannot reach http://127\.0\.0\.1"):
        check_hub_reachable()


@pytest.fixture(scope="module")
def evaluated(tiny_model, tmp_path_factory):
    """A real 4-step run on support@v2 (a split version), evaluated on its held-out rows."""
    import os

    from evals.evaluate import evaluate
    from evals.suites import suite_from_dataset
    from kernel import jobs
    from training.config import TrainConfig
    from training.start_run import launch_training

    os.environ.setdefault("STUDIO_TORCH_THREADS", "1")
    tmp = tmp_path_factory.mktemp("export")
    store = Store(Workspace.open(tmp / "ws"))
    write_jsonl(tmp / "d.jsonl", synthetic.generate(["repeat_twice"], 60, seed=4))
    import_file(store, tmp / "d.jsonl", "support")
    ref = split(store, "support", held_out=0.2, seed=0)["ref"]
    run_id = launch_training(store, TrainConfig(base_model=str(tiny_model), dataset="support",
                                                max_steps=4, save_steps=4, eval_steps=4))
    assert jobs.wait(store, run_id, timeout_s=600)["state"] == "completed"
    suite_from_dataset(store, "held", ref, metrics=["exact_match", "rouge_l"])
    result = evaluate(store, "held", [f"{run_id}/step-4"], backend="hf")
    return store, run_id, ref, result


def _front_matter(text: str) -> tuple[dict, str]:
    _, head, body = text.split("---\n", 2)
    return yaml.safe_load(head), body


@pytest.mark.slow
def test_export_is_a_standalone_model_with_a_card(evaluated, tiny_model, capsys):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    store, run_id, ref, result = evaluated
    out = store.workspace.root / "exports" / "merged"
    studio_main(["--workspace", str(store.workspace.root), "run", "merge", run_id, "--out",
                 str(out), "--json"])
    shown = json.loads(capsys.readouterr().out)
    ckpt = f"{run_id}/step-4"
    assert shown["checkpoint"] == ckpt and shown["dataset_ref"] == ref

    meta, body = _front_matter((out / "README.md").read_text())
    assert meta["base_model"] == str(tiny_model.resolve()) and meta["library_name"] == "transformers"
    assert "tuning-studio" in meta["tags"] and meta["pipeline_tag"] == "text-generation"
    assert f"dataset version: `{ref}`" in body
    prov = json.loads((out / "studio_provenance.json").read_text())["provenance"]
    assert prov["rows_sha256"] in body and prov["base_model_sha256"] in body
    exact = result.summary[ckpt]["exact_match"]["mean"]
    assert f"| held | task | 12 | exact_match | {exact:.4f} |" in body
    config = yaml.safe_load(body.split("```yaml\n", 1)[1].split("```", 1)[0])
    assert config["dataset"] == ref and config["max_steps"] == 4

    # Standalone: loads without peft and gives the outputs of base + adapter.
    adapter = store.workspace.run_dir(run_id) / "checkpoints" / "step-4"
    tok = AutoTokenizer.from_pretrained(out)
    ids = tok("say tiger two times", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        want = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model),
                                         adapter)(input_ids=ids).logits
        got = AutoModelForCausalLM.from_pretrained(out)(input_ids=ids).logits
    assert torch.allclose(want, got, atol=1e-4)
    assert tok.chat_template == json.loads((adapter / "meta.json").read_text())["chat_template"]

    with pytest.raises(StudioError, match="exists and is not empty"):
        export_model(store, ckpt, out)
