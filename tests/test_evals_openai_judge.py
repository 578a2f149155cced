"""OpenAI-compatible backend over real HTTP (a local server wrapping HF) and the LLM judge."""

from __future__ import annotations

import json
import re

import pytest

from evals.backends import Completion
from evals.backends.hf import HFBackend
from evals.backends.openai import OpenAIBackend
from evals.generate import generate_cached
from evals.judge import combine, grade, length_controlled_win_rate, pairwise
from evals.prompts import render_prompts
from evals.types import ModelRef, SamplingConfig
from kernel.errors import StudioError
from tests.helpers.fixtures import make_lora_adapter
from tests.helpers.hf_server import serve
from training.checkpoints import resolve as resolve_model

ROWS = [{"id": f"r{i}", "messages": [{"role": "user", "content": f"reverse {w}"}],
         "response": w[::-1]} for i, w in enumerate(["apple", "river", "stone", "cloud"])]


@pytest.fixture(scope="module")
def served(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("oai")
    base = ModelRef(base_model=str(tiny_model), name=f"base:{tiny_model}")
    adapter = resolve_model(None, str(make_lora_adapter(tiny_model, root / "ad", seed=7, scale=0.4)))
    with serve({"base": base, "ad": adapter}) as url:
        yield {"url": url, "base": base, "adapter": adapter}


def test_openai_completions_equal_hf_for_base_and_adapter(served):
    sampling = SamplingConfig(max_new_tokens=10)
    oai = OpenAIBackend(base_url=served["url"])
    hf = HFBackend(batch_size=1)
    assert oai.server_models() == ["base", "ad"]
    for model in (served["base"], served["adapter"]):
        prompts = render_prompts(model, ROWS)
        got = [c[0].text for c in oai.generate(model, prompts, sampling)]
        want = [c[0].text for c in hf.generate(model, prompts, sampling)]
        assert got == want
    assert oai.served_name(served["adapter"]) == "ad"


def test_openai_chat_endpoint_and_errors(served):
    chat = OpenAIBackend(base_url=served["url"] + "/v1", endpoint="chat",
                         served_models={served["base"].name: "base"})
    out = chat.generate(served["base"], ["reverse apple"], SamplingConfig(max_new_tokens=8))
    want = HFBackend().generate(served["base"], render_prompts(served["base"], ROWS[:1]),
                                SamplingConfig(max_new_tokens=8))
    assert out[0][0].text == want[0][0].text
    with pytest.raises(StudioError, match="no served model"):
        OpenAIBackend(base_url=served["url"]).served_name(
            ModelRef(base_model="x", adapter_path="/nowhere/zzz"))
    with pytest.raises(StudioError, match="failed"):
        OpenAIBackend(base_url="http://127.0.0.1:9", timeout_s=2).server_models()


def test_generate_cached_via_openai_records_backend(served, store):
    res = generate_cached(store, [served["base"]], ROWS, SamplingConfig(max_new_tokens=6),
                          backend="openai", backend_options={"base_url": served["url"]})
    assert res.n_generated == len(ROWS) and res.backend == "openai"
    rec = store.query("SELECT DISTINCT backend, backend_version FROM generations")
    assert rec[0]["backend"] == "openai" and served["url"] in rec[0]["backend_version"]


class RuleJudge:
    """A deterministic judge that follows the same protocol (prompt text in, reply out).

    position_bias=True always answers "A", like a judge that prefers the first answer.
    Otherwise it prefers the answer equal to the reference.
    """

    name = "rule"

    def __init__(self, position_bias: bool = False):
        self.position_bias = position_bias

    def version(self) -> str:
        return "1"

    def _reply(self, prompt: str) -> str:
        if "Score: N" in prompt:
            ref = re.search(r"Reference answer: (.*)", prompt).group(1)
            ans = re.search(r"Answer to grade: (.*)", prompt).group(1)
            return "Score: 5" if ans == ref else "Score: 1"
        if self.position_bias:
            return "A"
        ref = re.search(r"Reference answer: (.*)", prompt).group(1)
        a = re.search(r"Answer A: (.*)", prompt).group(1)
        b = re.search(r"Answer B: (.*)", prompt).group(1)
        return "tie" if (a == ref) == (b == ref) else ("A" if a == ref else "B")

    def generate(self, model, prompts, sampling):
        return [[Completion(text=self._reply(p))] for p in prompts]

    def close(self) -> None:
        pass


def test_pairwise_both_orders_removes_position_bias(served):
    judge = served["base"]
    base_out = ["wrong", "wrong", "stone"[::-1], "x"]
    cand_out = ["apple"[::-1], "river"[::-1], "stone"[::-1], "y"]
    fair = pairwise(RuleJudge(), judge, ROWS, base_out, cand_out)
    assert fair.verdicts == ["B", "B", "tie", "tie"] and fair.win_rate == 0.75
    biased = pairwise(RuleJudge(position_bias=True), judge, ROWS, base_out, cand_out)
    assert biased.verdicts == ["tie"] * 4 and biased.win_rate == 0.5
    assert biased.disagreements == 4
    assert grade(RuleJudge(), judge, ROWS, cand_out, rubric="correct") == [5.0, 5.0, 5.0, 1.0]
    assert combine("A", "B") == "A" and combine("A", "A") == "tie" and combine(None, "A") == "tie"


def test_length_controlled_win_rate_discounts_longer_answers():
    # Candidate wins exactly when it is longer: raw win rate is high, LC near 0.5.
    diffs = list(range(-10, 11))
    verdicts = ["B" if d > 0 else ("A" if d < 0 else "tie") for d in diffs]
    lc = length_controlled_win_rate(verdicts, [10] * len(diffs), [10 + d for d in diffs])
    assert lc == pytest.approx(0.5, abs=0.05)
    # Length-independent wins keep their rate.
    verdicts = ["B", "B", "B", "A"] * 5
    lens_b = [5, 9, 7, 6] * 5
    assert length_controlled_win_rate(verdicts, [7] * 20, lens_b) == pytest.approx(0.75, abs=0.1)


def test_judge_through_http_with_tiny_model(served):
    """End-to-end plumbing with a real (untrained-for-judging) model: unreadable = tie."""
    oai = OpenAIBackend(base_url=served["url"])
    res = pairwise(oai, served["base"], ROWS[:2], ["a", "b"], ["c", "d"])
    assert res.n == 2 and res.wins + res.losses + res.ties == 2


def test_cli_judge_through_openai_chat(served, store, capsys):
    from evals.suites import Suite, save_suite
    from studio.cli import main

    save_suite(store, Suite(name="j", rows=ROWS, metrics=["exact_match"],
                            sampling=SamplingConfig(max_new_tokens=4)))
    main(["-w", str(store.workspace.root), "judge", "--suite", "j",
          "--baseline", served["base"].name, "--candidate", served["adapter"].adapter_path,
          "--judge", served["base"].name, "--judge-backend", "openai",
          "--base-url", served["url"], "--rubric", "correct reversal", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert data["n"] == len(ROWS) and data["wins"] + data["losses"] + data["ties"] == len(ROWS)
    assert 0 <= data["win_rate"] <= 1 and "baseline_graded" in data
