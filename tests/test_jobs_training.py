"""Training as a durable job through the CLI, with real processes: run, kill -9, resume."""

from __future__ import annotations

import os
import signal
import time

import pytest

from kernel import jobs
from kernel.status import read_metric_lines, read_metrics, read_status
from tests.helpers.cli import cli_json
from training import synthetic
from training.data import write_jsonl


@pytest.fixture
def env(monkeypatch, workspace, tmp_path):
    monkeypatch.setenv("STUDIO_TORCH_THREADS", "1")  # inherited by the job processes
    data = tmp_path / "data.jsonl"
    write_jsonl(data, synthetic.generate(["repeat_twice"], 100, seed=1))
    return workspace, data



@pytest.mark.slow
def test_cli_run_completes_with_falling_eval_loss(env, capsys, tiny_model):
    workspace, data = env
    out = cli_json(capsys, workspace, "train", "--base-model", str(tiny_model), "--data-file", str(data),
              "--max-steps", "16", "--eval-steps", "8", "--save-steps", "8", "--lr", "1e-3",
              "--name", "cli-run", "--wait", "--json")
    assert out["state"] == "completed", out
    assert out["checkpoints"] == [f"{out['run_id']}/step-8", f"{out['run_id']}/step-16"]
    evals = [r["eval_loss"] for r in read_metrics(out["run_dir"]) if "eval_loss" in r]
    assert len(evals) == 2 and evals[1] < evals[0]
    listed = cli_json(capsys, workspace, "runs", "--json")
    assert [r["id"] for r in listed] == [out["run_id"]] and listed[0]["state"] == "completed"
    shown = cli_json(capsys, workspace, "run", "show", out["run_id"], "--json")
    assert shown["config"]["max_steps"] == 16 and shown["name"] == "cli-run"
    logs = cli_json(capsys, workspace, "run", "logs", out["run_id"], "--json")
    assert "[job] completed" in logs["log"]
    _check_resolve_and_merge(workspace, capsys, out["checkpoints"][-1], tiny_model)


def _check_resolve_and_merge(workspace, capsys, checkpoint_id, tiny_model):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from kernel.store import Store
    from training.checkpoints import resolve

    store = Store(workspace)
    ref = resolve(store, checkpoint_id)
    assert ref.adapter_path.endswith("step-16") and ref.eos_token == "<|eos|>"
    assert ref.base_model == str(tiny_model) and "<|assistant|>" in ref.chat_template
    base = resolve(store, f"base:{tiny_model}")
    assert base.adapter_path is None and base.chat_template == ref.chat_template
    run_id = checkpoint_id.split("/")[0]
    merged = cli_json(capsys, workspace, "run", "merge", run_id, "--out", str(workspace.root / "merged"), "--json")
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        want = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model),
                                         ref.adapter_path)(input_ids=ids).logits
        got = AutoModelForCausalLM.from_pretrained(merged["path"])(input_ids=ids).logits
    assert torch.allclose(want, got, atol=1e-4)


@pytest.mark.slow
def test_kill_9_then_resume_continues_from_last_checkpoint(env, capsys, tiny_model):
    from kernel.store import Store
    from training.config import TrainConfig
    from training.start_run import launch_training

    workspace, data = env
    store = Store(workspace)
    run_id = launch_training(store, TrainConfig(base_model=str(tiny_model), data_file=str(data),
                                                max_steps=40, save_steps=10, eval_steps=20,
                                                logging_steps=2))
    run_dir = workspace.run_dir(run_id)
    deadline = time.monotonic() + 240
    while not (run_dir / "hf" / "checkpoint-10" / "trainer_state.json").exists():
        assert time.monotonic() < deadline, jobs.log_tail(run_dir)
        assert jobs.get_run(store, run_id)["state"] in ("queued", "running"), jobs.log_tail(run_dir)
        time.sleep(0.2)
    pid = read_status(run_dir)["pid"]
    os.kill(pid, signal.SIGKILL)
    while jobs.pid_alive(pid):
        time.sleep(0.05)
    run = jobs.get_run(store, run_id)
    assert run["state"] == "failed" and f"process {pid} died" in run["error"]
    killed_at = read_metrics(run_dir)[-1]["step"]

    out = cli_json(capsys, workspace, "run", "resume", run_id, "--wait", "--json")
    assert out["state"] == "completed", out
    assert out["step"] == 40 and f"{run_id}/step-40" in out["checkpoints"]
    log = jobs.log_tail(run_dir, 400)
    resumed_from = int(log.split("resuming from ")[1].split("checkpoint-")[1].split()[0])
    assert 10 <= resumed_from <= killed_at
    raw = [r["step"] for r in read_metric_lines(run_dir).records if "loss" in r]
    assert raw.count(1) == 1, "the resumed attempt must not start again from step 1"
    assert max(raw) == 40 and any(s > resumed_from for s in raw)
    steps = [r["step"] for r in read_metrics(run_dir)]
    assert steps == sorted(set(steps)), "one record per step, in order (no zig-zag)"
