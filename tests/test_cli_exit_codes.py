"""Exit codes as scripts see them: one real `studio` process per code, and where they are
documented (`studio --help`, README)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from studio.cli.common import (
    EXIT_ABORTED,
    EXIT_GATE_FAILED,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_USAGE,
    EXIT_USER_ERROR,
)

REPO = Path(__file__).resolve().parents[1]
CODES = {EXIT_OK: "ok", EXIT_USER_ERROR: "user error", EXIT_USAGE: "usage error",
         EXIT_GATE_FAILED: "regression gate failed", EXIT_INTERNAL: "internal error",
         EXIT_ABORTED: "aborted"}


def studio(*args: str, prelude: str = "") -> subprocess.CompletedProcess:
    """`studio ARGS` in a fresh process; `prelude` is Python run first (to inject a failure)."""
    code = f"{prelude}\nfrom studio.cli import main\nmain()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)


def test_codes_are_distinct_and_documented_in_help_and_readme():
    assert len(set(CODES)) == len(CODES)
    help_text = studio("--help").stdout
    readme = (REPO / "README.md").read_text()
    for code, meaning in CODES.items():
        assert f"{code}" in help_text and meaning in help_text, (code, help_text)
        assert f"| {code} | {meaning}" in readme, f"README lacks exit code {code} ({meaning})"


def test_ok_user_error_and_usage_error(tmp_path):
    ws = str(tmp_path / "ws")
    ok = studio("-w", ws, "datasets", "--json")
    assert ok.returncode == EXIT_OK and json.loads(ok.stdout) == []
    user = studio("-w", ws, "show", "nope", "--json")
    assert user.returncode == EXIT_USER_ERROR and user.stdout == ""
    assert user.stderr.startswith("error: ") and len(user.stderr.strip().splitlines()) == 1
    usage = studio("-w", ws, "datasets", "--no-such-option")
    assert usage.returncode == EXIT_USAGE and "No such option" in usage.stderr


def test_a_corrupt_database_is_the_users_state_not_a_bug(tmp_path):
    """A damaged workspace file is not a studio bug: one line that says what to do, exit 1."""
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "studio.duckdb").write_bytes(os.urandom(8192))
    got = studio("-w", str(ws), "datasets", "--json")
    assert got.returncode == EXIT_USER_ERROR and got.stdout == ""
    assert "Traceback" not in got.stderr and len(got.stderr.strip().splitlines()) == 1
    assert "not a valid DuckDB database" in got.stderr


def test_internal_error_and_abort_from_an_injected_failure(tmp_path):
    ws = str(tmp_path / "ws")
    inject = ("import curation.datasets as d\n"
              "def boom(*a, **k):\n    raise {exc}('injected')\n"
              "d.list_datasets = boom")
    bug = studio("-w", ws, "datasets", prelude=inject.format(exc="ZeroDivisionError"))
    assert bug.returncode == EXIT_INTERNAL
    assert "internal error: ZeroDivisionError: injected" in bug.stderr
    ctrl_c = studio("-w", ws, "datasets", prelude=inject.format(exc="KeyboardInterrupt"))
    assert ctrl_c.returncode == EXIT_ABORTED and ctrl_c.stderr.strip() == "aborted"


@pytest.mark.slow
def test_gate_failure_has_its_own_code(tiny_model, tmp_path):
    """A candidate far worse than its baseline: exit 3 (with the JSON still on stdout), while
    the same comparison without --fail-on-regression exits 0."""
    from evals.backends.hf import HFBackend
    from evals.prompts import render_prompts
    from evals.suites import suite_from_file
    from evals.types import ModelRef, SamplingConfig
    from kernel.store import Store
    from kernel.workspace import Workspace
    from tests.helpers.fixtures import make_lora_adapter

    base = ModelRef(base_model=str(tiny_model), name=f"base:{tiny_model}")
    rows = [{"id": f"r{i}", "messages": [{"role": "user", "content": f"reverse {w}"}]}
            for i, w in enumerate(["apple", "river", "stone", "cloud", "tiger", "lemon", "piano",
                                   "rocket", "violet", "garden", "candle", "mirror"])]
    sampling = SamplingConfig(max_new_tokens=8)
    outs = HFBackend(batch_size=12).generate(base, render_prompts(base, rows), sampling)
    suite = tmp_path / "suite.jsonl"
    suite.write_text("".join(json.dumps({**r, "response": o[0].text}) + "\n"
                             for r, o in zip(rows, outs, strict=True)))
    ws = Workspace.open(tmp_path / "ws")
    suite_from_file(Store(ws), "s", suite, metrics=["exact_match"], sampling=sampling)
    bad = make_lora_adapter(tiny_model, tmp_path / "bad", seed=2, scale=2.0)
    args = ["-w", str(ws.root), "compare", "--suite", "s", "--baseline", base.name,
            "--candidate", str(bad), "--json"]
    plain = studio(*args)
    assert plain.returncode == EXIT_OK, plain.stderr[-2000:]
    assert json.loads(plain.stdout)["gate_failed"] is True
    gated = studio(*args, "--fail-on-regression")
    assert gated.returncode == EXIT_GATE_FAILED, gated.stderr[-2000:]
    assert json.loads(gated.stdout)["gate_failed"] is True
    assert "regression gate failed" in gated.stderr
