"""HF backend end to end on the shared tiny model: cache, scores, comparison, CLI gate.

The suite's references are the base model's own greedy outputs, so the base model scores 1.0
by construction and a strongly perturbed LoRA adapter is a planted regression.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evals.backends import CacheOnly
from evals.backends.hf import HFBackend
from evals.compare import compare, forgetting
from evals.evaluate import evaluate
from evals.prompts import render_prompts
from evals.suites import Suite, load_suite, save_suite, suite_from_file
from evals.types import ModelRef, SamplingConfig
from kernel.errors import StudioError
from kernel.store import Store
from kernel.workspace import Workspace
from studio.cli import main
from tests.helpers.fixtures import make_lora_adapter
from training.checkpoints import resolve as resolve_model

REPO = Path(__file__).resolve().parents[1]
WORDS = ["apple", "river", "stone", "cloud", "tiger", "lemon", "piano", "rocket", "violet",
         "garden", "candle", "mirror", "silver", "window", "forest", "pepper", "yellow", "orange"]
PROMPTS = [f"{task} {w}" for task in ("reverse", "upper") for w in WORDS]   # 36 prompts


@pytest.fixture(scope="module")
def env(tiny_model, tmp_path_factory):
    """Workspace + base model + a mild and a strong adapter + a suite file with base answers."""
    root = tmp_path_factory.mktemp("evals-hf")
    small = make_lora_adapter(tiny_model, root / "small", seed=1, scale=0.0)   # B = 0: no-op
    strong = make_lora_adapter(tiny_model, root / "strong", seed=2, scale=0.5)
    base = ModelRef(base_model=str(tiny_model), name=f"base:{tiny_model}")
    rows = [{"id": f"p{i}", "messages": [{"role": "user", "content": p}],
             "category": p.split()[0]} for i, p in enumerate(PROMPTS)]
    backend = HFBackend(batch_size=16)
    outs = backend.generate(base, render_prompts(base, rows), SamplingConfig(max_new_tokens=16))
    suite_file = root / "suite.jsonl"
    with suite_file.open("w") as f:
        for r, o in zip(rows, outs, strict=True):
            f.write(json.dumps({**r, "response": o[0].text}) + "\n")
    ws = Workspace.open(root / "ws")
    store = Store(ws)
    suite_from_file(store, "words", suite_file, metrics=["exact_match", "chrf", "length"],
                    sampling=SamplingConfig(max_new_tokens=16))
    return {"store": store, "ws": ws, "base": base.name, "small": str(small),
            "strong": str(strong), "file": suite_file, "model": str(tiny_model)}


def test_generation_is_cached_and_recorded(env):
    store = env["store"]
    first = evaluate(store, "words", [env["base"], env["strong"]])
    assert first.generation.n_generated == 2 * len(PROMPTS)
    assert first.summary[env["base"]]["exact_match"]["mean"] == 1.0
    # A backend that cannot generate: the second run must come from the cache alone.
    again = evaluate(store, "words", [env["base"], env["strong"]],
                     backend=CacheOnly("must not generate", HFBackend.cache_identity({})))
    assert again.generation.n_generated == 0 and again.generation.n_cached == 2 * len(PROMPTS)
    assert again.generation.outputs == first.generation.outputs
    rec = store.query("SELECT backend, backend_version, sampling, batch_size, adapter_hash "
                      "FROM generations WHERE adapter_hash IS NOT NULL LIMIT 1")[0]
    assert rec["backend"] == "hf" and rec["backend_version"].startswith("transformers-")
    assert json.loads(rec["sampling"])["seed"] == 0 and rec["batch_size"] == 8
    n_scores = store.query("SELECT count(*) AS n FROM eval_scores WHERE suite = 'words'")[0]["n"]
    assert n_scores == 2 * len(PROMPTS) * 3


def test_left_padded_batches_equal_single_prompts(env):
    ref = resolve_model(env["store"], env["strong"])
    prompts = render_prompts(ref, [{"messages": [{"role": "user", "content": p}]}
                                   for p in PROMPTS[:6]])
    sampling = SamplingConfig(max_new_tokens=12)
    batched = HFBackend(batch_size=6).generate(ref, prompts, sampling)
    single = HFBackend(batch_size=1).generate(ref, prompts, sampling)
    assert [b[0].token_ids for b in batched] == [s[0].token_ids for s in single]


def test_planted_regression_found_and_identical_pass(env):
    store = env["store"]
    bad = compare(store, "words", env["base"], env["strong"], n_boot=2000)
    em = next(m for m in bad.metrics if m["metric"] == "exact_match")
    assert em["ci_high"] < 0 and em["p_mcnemar"] < 0.01 and em["regressed"]
    assert bad.gate_failed and not next(m for m in bad.metrics if m["metric"] == "length")["regressed"]
    worst = bad.regressions[0]
    assert worst["baseline_output"] == worst["reference"] != worst["candidate_output"]
    assert worst["diff"].startswith("--- baseline")
    assert {b["category"] for b in bad.breakdown} == {"reverse", "upper"}
    # A no-op adapter (B = 0) is a different checkpoint with identical outputs.
    same = compare(store, "words", env["base"], env["small"], n_boot=2000)
    for m in same.metrics:
        assert m["diff"] == 0 and m["ci_low"] == 0 and m["ci_high"] == 0
    assert not same.gate_failed and same.regressions == []
    # A margin wider than the drop lets the gate pass.
    assert not compare(store, "words", env["base"], env["strong"], margin=1.0).gate_failed


def test_forgetting_uses_base_model(env):
    res = forgetting(env["store"], "words", env["strong"], n_boot=1000)
    assert res.baseline == f"base:{env['model']}" and res.gate_failed


def test_sampling_n_keeps_every_sample(env):
    store = env["store"]
    rows = load_suite(store, "words").rows[:4]
    save_suite(store, Suite(name="sampled", rows=rows, metrics=["exact_match"],
                            sampling=SamplingConfig(max_new_tokens=8, temperature=1.5, n=3)))
    res = evaluate(store, "sampled", [env["strong"]])
    assert res.generation.n_generated == 12
    outs = res.generation.outputs[env["strong"]]
    assert all(len(v) == 3 for v in outs.values()) and any(len(set(v)) > 1 for v in outs.values())
    idx = store.query("SELECT DISTINCT sample_idx FROM generations ORDER BY 1")
    assert [r["sample_idx"] for r in idx] == [0, 1, 2]
    assert evaluate(store, "sampled", [env["strong"]]).generation.n_generated == 0


def test_bad_suite_file_names_line_and_leaves_store_unchanged(env, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "a", "response": "b"}\n{not json}\n')
    with pytest.raises(StudioError, match=r"bad.jsonl:2: invalid JSON"):
        suite_from_file(env["store"], "bad", bad)
    dup = tmp_path / "dup.jsonl"
    dup.write_text('{"id": "x", "instruction": "a"}\n{"id": "x", "instruction": "b"}\n')
    with pytest.raises(StudioError, match="row 2: field 'id' 'x' is duplicated"):
        suite_from_file(env["store"], "dup", dup)
    with pytest.raises(StudioError, match="metric 'bleu2'"):
        suite_from_file(env["store"], "m", env["file"], metrics=["bleu2"])
    save_suite(env["store"], Suite(name="noref", rows=[{"id": "a", "instruction": "reverse x"}]))
    with pytest.raises(StudioError, match="row 'a': field 'response'"):
        evaluate(env["store"], "noref", [env["base"]], backend="no-such-backend")
    names = [r["name"] for r in env["store"].query("SELECT name FROM eval_suites")]
    assert "bad" not in names and "dup" not in names and "m" not in names


def test_cli_suites_eval_compare_gate(env, capsys):
    ws = str(env["ws"].root)
    main(["-w", ws, "suites", "add", "cli-words", "--file", str(env["file"]),
          "--metric", "exact_match", "--max-new-tokens", "16", "--json"])
    assert json.loads(capsys.readouterr().out)["n_rows"] == len(PROMPTS)
    main(["-w", ws, "suites", "--json"])
    assert "cli-words" in [s["name"] for s in json.loads(capsys.readouterr().out)]
    main(["-w", ws, "eval", "--suite", "cli-words", "--checkpoint", env["base"], "--json"])
    data = json.loads(capsys.readouterr().out)
    assert data["results"][env["base"]]["exact_match"]["mean"] == 1.0
    main(["-w", ws, "compare", "--suite", "cli-words", "--baseline", env["base"],
          "--candidate", env["small"], "--fail-on-regression"])
    assert "gate: pass" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["-w", ws, "compare", "--suite", "cli-words", "--baseline", env["base"],
              "--candidate", env["strong"], "--fail-on-regression", "--json"])
    assert exc.value.code == 3
    assert json.loads(capsys.readouterr().out)["gate_failed"] is True
    with pytest.raises(SystemExit) as exc:
        main(["-w", ws, "compare", "--suite", "nope", "--baseline", env["base"],
              "--candidate", env["small"]])
    assert exc.value.code == 1 and "suite 'nope' not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["-w", ws, "compare", "--suite", "cli-words", "--baseline", env["base"],
              "--candidate", env["small"], "--metric", "rouge_l"])
    assert exc.value.code == 1 and "not a metric of suite cli-words" in capsys.readouterr().err


@pytest.mark.slow
def test_gate_exit_code_through_real_subprocess(env):
    """`studio compare --fail-on-regression` as a CI step: exit 0 for no-op, 3 for regression."""
    studio = [sys.executable, "-c", "from studio.cli import main; main()"]
    common = ["-w", str(env["ws"].root), "compare", "--suite", "words", "--baseline", env["base"],
              "--fail-on-regression", "--margin", "0.05"]
    envv = {**os.environ, "PYTHONPATH": str(REPO)}
    ok = subprocess.run(studio + common + ["--candidate", env["small"]], capture_output=True,
                        text=True, env=envv, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert "gate: pass" in ok.stdout
    bad = subprocess.run(studio + common + ["--candidate", env["strong"]], capture_output=True,
                         text=True, env=envv, timeout=300)
    assert bad.returncode == 3
    assert "regression gate failed" in bad.stderr and "exact_match" in bad.stderr


def test_hf_sample_does_not_depend_on_its_batch(tiny_model):
    """Each row samples with its own generator (seeded from its prompt): a prompt sampled alone
    or in a batch of four, in any order, gives the same tokens, as vLLM's per-request seeds do.
    Prompts of one token length, so padding cannot change the numbers."""
    from evals.prompts import load_tokenizer

    base = ModelRef(base_model=str(tiny_model), name=f"base:{tiny_model}")
    prompts = render_prompts(base, [{"messages": [{"role": "user", "content": p}]}
                                    for p in PROMPTS])
    tok = load_tokenizer(str(tiny_model), None)
    lengths = [len(tok(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    common = max(set(lengths), key=lengths.count)
    same = [p for p, n in zip(prompts, lengths, strict=True) if n == common][:12]
    assert len(same) >= 8
    hot = SamplingConfig(max_new_tokens=6, temperature=1.5, top_p=0.95, n=2, seed=11)
    alone = HFBackend(batch_size=1).generate(base, same, hot)
    batched = HFBackend(batch_size=4).generate(base, same[::-1], hot)[::-1]
    ids = [[c.token_ids for c in samples] for samples in alone]
    assert [[c.token_ids for c in samples] for samples in batched] == ids
    assert any(s[0] != s[1] for s in ids)                   # the two samples differ somewhere
    assert len({tuple(s[0]) for s in ids}) > 1              # and so do the prompts


def test_a_character_cut_in_half_is_not_rendered(tiny_model):
    """Generation can stop inside a multi-byte character (at max tokens or EOS): decode() shows
    its bytes as U+FFFD, vLLM's detokenizer holds them back. The hf backend drops them, so both
    backends give the same text for the same tokens; whole characters are kept."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    ids = tok.encode("STONE😀", add_special_tokens=False)
    assert len(ids) > 2 and tok.decode(ids[:-1]).endswith("\ufffd")  # a byte-level split
    cfg = SamplingConfig(max_new_tokens=len(ids))
    cut = HFBackend._completion(ids[:-1], tok.eos_token_id, tok, cfg)
    assert cut.text == "STONE" and cut.token_ids == ids[:-1] and cut.finish_reason == "length"
    whole = HFBackend._completion(ids + [tok.eos_token_id], tok.eos_token_id, tok, cfg)
    assert whole.text == "STONE😀" and whole.finish_reason == "stop"
