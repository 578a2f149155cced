"""Every `--json` command prints exactly one JSON document on stdout and nothing else.

The commands are listed from the click app itself, so a new command is covered the day it is
added: each must be driven by DRIVERS (valid arguments on a small real workspace) or named in
NOT_DRIVEN with the reason, or `test_every_json_command_is_driven_or_listed` fails. Output is
captured at the file-descriptor level (capfd), so anything a library, C code or a child
process writes to fd 1 while a command runs lands in stdout and breaks `json.loads`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from studio.cli import _register_commands, main
from studio.cli.common import iter_commands

REPO = Path(__file__).resolve().parents[1]

# Commands this test does not run, with the reason; everything else with --json is driven.
NOT_DRIVEN = {
    "demo": "runs the whole loop for minutes; tests/test_demo.py runs `studio demo --json` in a "
            "real subprocess and parses its stdout whole",
    "ablate": "trains one run per version and seed and evaluates them all (minutes); "
              "tests/test_ablation.py runs `studio ablate --json` and parses its stdout whole",
    "ablation": "reports an ablation made by `studio ablate`; tests/test_ablation.py runs it",
}

Args = Callable[[dict], list[str]]


def _row_id(c: dict) -> str:
    return c["browse"]["rows"][0]["id"]


def _dup_choice(c: dict) -> str:
    cluster = c["clusters"]["clusters"][0]
    other = next(m for m in cluster["members"] if m["uid"] != cluster["keeper"])
    return f"{cluster['cluster']}={other['id']}"


# Without a model: curation, suites, the UI launcher (dry run). Order matters (state builds up).
CURATION: list[tuple[str, Args]] = [
    ("import", lambda c: [c["data"], "--name", "d"]),
    ("datasets", lambda c: []),
    ("show", lambda c: ["d"]),
    ("browse", lambda c: ["d", "--page-size", "3"]),
    ("score", lambda c: ["d", "--scorer", "heuristic", "--out", "scored"]),
    ("hist", lambda c: ["d", "resp_chars", "--bins", "3"]),
    ("filter", lambda c: ["d", "--where", "resp_chars>=1", "--out", "f"]),
    ("dedup", lambda c: ["d", "--method", "exact", "--out", "dd"]),
    ("clusters", lambda c: ["d@dd"]),
    ("lineage", lambda c: ["d@dd"]),
    ("keep", lambda c: ["d@dd", _dup_choice(c), "--out", "kept"]),
    ("exclude", lambda c: ["d", _row_id(c), "--out", "ex"]),
    ("split", lambda c: ["d", "--held-out", "0.25", "--seed", "0", "--out", "sp"]),
    ("decontam", lambda c: ["d", "--against", "d@sp", "--out", "dc"]),
    ("versions", lambda c: ["d"]),
    ("diff", lambda c: ["d@v1", "d@ex"]),
    ("export", lambda c: ["d", c["export"]]),
    ("suites add", lambda c: ["s", "--file", c["suite_file"], "--max-new-tokens", "4"]),
    ("suites", lambda c: []),
    ("runs", lambda c: []),
    ("experiments", lambda c: []),
    ("ui", lambda c: ["--dry-run"]),
    ("store status", lambda c: []),
]

# With the tiny model: training jobs, scoring, evaluation, comparison, judging.
MODEL: list[tuple[str, Args]] = [
    ("model build-tiny", lambda c: [c["tmp"] + "/built", "--steps", "2"]),
    ("model import", lambda c: [c["tmp"] + "/built", "--name", "tiny-imported"]),
    ("model list", lambda c: []),
    ("model show", lambda c: ["tiny-imported"]),
    ("score", lambda c: ["d", "--scorer", "perplexity", "--model", c["model"], "--out", "loss"]),
    ("denoise", lambda c: ["d@loss", "--score", "resp_loss", "--group-by", "none", "--out", "clean"]),
    ("train", lambda c: ["--base-model", c["model"], "--data-file", c["train_file"],
                         "--max-steps", "30", "--save-steps", "10", "--eval-steps", "10",
                         "--name", "t"]),
    ("run cancel", lambda c: [c["train"]["run_id"]]),
    ("run resume", lambda c: [c["train"]["run_id"], "--wait"]),
    ("run show", lambda c: [c["train"]["run_id"]]),
    ("run logs", lambda c: [c["train"]["run_id"]]),
    ("run merge", lambda c: [c["train"]["run_id"], "--out", c["tmp"] + "/merged"]),
    ("lineage", lambda c: ["--checkpoint", c["ckpt"]]),
    ("chat", lambda c: [c["ckpt"], "hi", "--with-base", "--max-new-tokens", "4"]),
    ("eval", lambda c: ["--suite", "s", "--checkpoint", c["base"], "--checkpoint", c["ckpt"]]),
    ("eval", lambda c: ["--suite", "s", "--checkpoint", c["ckpt"], "--detach", "--dtype",
                        "bfloat16"]),
    ("eval-ingest", lambda c: [c["eval_job"]]),
    ("compare", lambda c: ["--suite", "s", "--baseline", c["base"], "--candidate", c["ckpt"]]),
    ("curve", lambda c: ["--suite", "s", "--checkpoint", c["base"], "--checkpoint", c["ckpt"]]),
    ("judge", lambda c: ["--suite", "s", "--baseline", c["base"], "--candidate", c["ckpt"],
                         "--judge", c["base"]]),
    ("sweep", lambda c: ["--config", _sweep_config(c), "--grid", "lr=1e-4,2e-3", "--suite", "s",
                         "--name", "sw"]),
    ("sweep", lambda c: ["show", "sw"]),
]


def _sweep_config(c: dict) -> str:
    """A two-step config for a tiny sweep (2 runs)."""
    path = Path(c["tmp"]) / "sweep.yaml"
    path.write_text(json.dumps({"base_model": c["model"], "data_file": c["train_file"],
                                "max_steps": 2, "save_steps": 2, "eval_steps": 2,
                                "eval_fraction": 0.0, "report_to": "none"}))
    return str(path)


def json_commands() -> set[str]:
    _register_commands()
    return {" ".join(path) for path, cmd in iter_commands() if path
            and any("--json" in getattr(p, "opts", ()) for p in cmd.params)}


def test_every_json_command_is_driven_or_listed():
    driven = {name for name, _ in CURATION + MODEL}
    commands = json_commands()
    assert len(commands) >= 30   # the enumeration found the app's commands
    missing = sorted(commands - driven - set(NOT_DRIVEN))
    assert not missing, f"--json commands neither driven nor listed in NOT_DRIVEN: {missing}"
    stale = sorted((driven | set(NOT_DRIVEN)) - commands)
    assert not stale, f"driven or listed but not a --json command: {stale}"


def _write_data(tmp: Path) -> dict:
    from training import synthetic
    from training.data import write_jsonl

    rows = synthetic.generate(["repeat_twice", "reverse"], 24, seed=3)
    alpaca = [{"instruction": r["instruction"], "output": r["response"]} for r in rows]
    data = tmp / "data.jsonl"
    with data.open("w") as f:
        for r in alpaca + alpaca[:2]:           # two exact duplicates: a cluster to review
            f.write(json.dumps(r) + "\n")
    suite = tmp / "suite.jsonl"
    with suite.open("w") as f:
        for r in rows[:4]:
            f.write(json.dumps({"instruction": r["instruction"], "response": r["response"]}) + "\n")
    train = tmp / "train.jsonl"
    write_jsonl(train, synthetic.generate(["repeat_twice"], 40, seed=1))
    return {"data": str(data), "suite_file": str(suite), "train_file": str(train),
            "export": str(tmp / "out.jsonl"), "tmp": str(tmp)}


def drive(capfd, ws: Path, steps: list[tuple[str, Args]], c: dict) -> None:
    """Run each step with --json; stdout must parse whole as JSON. Results feed later steps."""
    for name, args in steps:
        argv = ["--workspace", str(ws), *name.split(), *args(c), "--json"]
        capfd.readouterr()
        code = 0
        try:
            main(argv)
        except SystemExit as exc:
            code = exc.code or 0
        out, err = capfd.readouterr()
        assert code == 0, f"studio {' '.join(argv)} exited {code}: {err[-2000:]}"
        try:
            c[name] = json.loads(out)
        except ValueError as exc:
            pytest.fail(f"studio {' '.join(argv)}: stdout is not one JSON document ({exc}): "
                        f"{out[:1000]!r}")
        after = getattr(sys.modules[__name__], "after_" + name.replace(" ", "_").replace("-", "_"),
                        None)
        if after:
            after(c, ws)


def after_train(c: dict, ws: Path) -> None:
    c["run"] = c["train"]["run_id"]


def after_run_resume(c: dict, ws: Path) -> None:
    assert c["run resume"]["state"] == "completed", c["run resume"]
    c["ckpt"] = c["run resume"]["checkpoints"][-1]


def after_eval(c: dict, ws: Path) -> None:
    if "run_id" not in c["eval"]:
        assert c["eval"]["backend"] == "hf" and c["eval"]["n_generated"] > 0
        return
    from kernel.jobs import get_run
    from kernel.store import Store
    from kernel.workspace import Workspace

    c["eval_job"] = c["eval"]["run_id"]
    store = Store(Workspace.open(ws))
    deadline = time.monotonic() + 300
    while get_run(store, c["eval_job"])["state"] not in ("completed", "failed", "cancelled"):
        assert time.monotonic() < deadline, "eval job did not finish in 5 min"
        time.sleep(0.5)


def test_json_commands_without_a_model(capfd, tmp_path):
    c = _write_data(tmp_path)
    drive(capfd, tmp_path / "ws", CURATION, c)
    assert c["import"]["n_rows"] == 50 and c["clusters"]["total"] >= 2
    assert c["suites add"]["n_rows"] == 4


@pytest.mark.slow
def test_json_commands_with_the_tiny_model(capfd, tmp_path, tiny_model, monkeypatch):
    monkeypatch.setenv("STUDIO_TORCH_THREADS", "1")
    c = {**_write_data(tmp_path), "model": str(tiny_model), "base": f"base:{tiny_model}"}
    drive(capfd, tmp_path / "ws", CURATION + MODEL, c)
    assert c["eval-ingest"]["backend_config"]["dtype"] == "bfloat16"
    assert c["compare"]["backend"] == {"backend": "hf", "dtype": "float32", "quantization": None}
    assert len(c["sweep"]["ranking"]) == 2 and c["sweep"]["name"] == "sw"


def test_json_mode_sends_fd1_of_children_and_prints_to_stderr(tmp_path):
    """The mechanism itself, in a real process: a --json command whose body prints, writes to
    fd 1 directly and runs a child process that writes to its stdout."""
    script = tmp_path / "noisy.py"
    script.write_text(
        "import os, subprocess, sys\n"
        "import click\n"
        "from studio.cli.common import emit, json_option\n"
        "@click.command()\n"
        "@json_option\n"
        "def noisy(as_json):\n"
        "    print('print noise')\n"
        "    os.write(1, b'fd noise\\n')\n"
        "    subprocess.run([sys.executable, '-c', 'print(\"child noise\")'], check=True)\n"
        "    emit({'ok': True}, as_json)\n"
        "    print('after noise')\n"
        "if __name__ == '__main__':\n"
        "    noisy.main(standalone_mode=False)\n"
        "    print('outside the command')\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    got = subprocess.run([sys.executable, str(script), "--json"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert got.returncode == 0, got.stderr
    assert got.stdout == '{\n  "ok": true\n}\noutside the command\n'
    for noise in ("print noise", "fd noise", "child noise", "after noise"):
        assert noise in got.stderr
    plain = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                           env=env, timeout=120)
    assert "child noise" in plain.stdout and "fd noise" in plain.stdout


@pytest.mark.slow
@pytest.mark.vllm
def test_vllm_eval_json_is_pure_and_backends_never_share_cache(require_vllm, tiny_model,
                                                               tmp_path):
    """The issue's scenario, as a user's CI runs it: `studio eval --backend vllm --json` in a
    real process (vLLM's engine core process inherits fd 1), then --backend hf in the same
    workspace must generate again rather than reuse vLLM's outputs; hf twice reuses."""
    from evals.suites import suite_from_file
    from kernel.store import Store
    from kernel.workspace import Workspace

    c = _write_data(tmp_path)
    ws = Workspace.open(tmp_path / "ws")
    suite_from_file(Store(ws), "s", c["suite_file"], metrics=["exact_match"],
                    sampling={"max_new_tokens": 6})
    env = {**os.environ, "PYTHONPATH": str(REPO), "STUDIO_TORCH_THREADS": "1"}

    def studio(*args: str) -> dict:
        got = subprocess.run([sys.executable, "-c", "from studio.cli import main; main()",
                              "-w", str(ws.root), *args, "--json"], capture_output=True,
                             text=True, env=env, timeout=600)
        assert got.returncode == 0, got.stderr[-3000:]
        try:
            return json.loads(got.stdout) | {"_stderr": got.stderr}
        except ValueError:
            pytest.fail(f"stdout is not one JSON document: {got.stdout[:2000]!r}")

    base = f"base:{tiny_model}"
    v = studio("eval", "--suite", "s", "--checkpoint", base, "--backend", "vllm")
    assert v["backend"] == "vllm" and v["n_generated"] == 4 and v["n_cached"] == 0
    assert "INFO" in v["_stderr"]      # vLLM did log: to stderr, not stdout
    h = studio("eval", "--suite", "s", "--checkpoint", base, "--backend", "hf")
    assert h["backend"] == "hf" and h["n_generated"] == 4 and h["n_cached"] == 0
    again = studio("eval", "--suite", "s", "--checkpoint", base, "--backend", "hf")
    assert again["n_generated"] == 0 and again["n_cached"] == 4
    rows = Store(ws).query("SELECT backend, count(*) AS n FROM generations GROUP BY 1 ORDER BY 1")
    assert rows == [{"backend": "hf", "n": 4}, {"backend": "vllm", "n": 4}]
