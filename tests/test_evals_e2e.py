"""Done-criterion, end to end: a real tiny LoRA run (2 checkpoints) + its base model, evaluated
through vLLM (CPU) and HF with one engine, cached, compared with CIs and regression lists, and
checked for forgetting on a general suite.
"""

from __future__ import annotations

import os

import pytest

from evals.backends import CacheOnly
from evals.compare import across_checkpoints, compare, forgetting
from evals.evaluate import evaluate
from evals.prompts import render_prompts
from evals.suites import Suite, save_suite
from evals.types import SamplingConfig
from kernel.store import Store
from kernel.workspace import Workspace
from tests.helpers.consistency import agreement
from training.checkpoints import resolve as resolve_model

pytestmark = [pytest.mark.slow, pytest.mark.vllm]


@pytest.fixture(scope="module")
def trained_run(require_vllm, tiny_model, tmp_path_factory):
    from training import synthetic
    from training.config import TrainConfig
    from training.data import split_rows
    from training.preflight import preflight
    from training.trainer import build_trainer

    os.environ.setdefault("STUDIO_TORCH_THREADS", "1")
    ws = Workspace.open(tmp_path_factory.mktemp("e2e") / "ws")
    run_dir = ws.run_dir("run1")
    run_dir.mkdir(parents=True)
    rows = synthetic.generate(["repeat_twice"], 200, seed=0)
    cfg = preflight(TrainConfig(base_model=str(tiny_model), data_file="x", max_steps=40,
                                eval_steps=20, save_steps=20, logging_steps=10, batch_size=16,
                                eval_fraction=0.1, lora_dropout=0.0))
    train, held = split_rows(rows, cfg.eval_fraction, cfg.seed)
    build_trainer(cfg, run_dir, train, held).train()
    store = Store(ws)
    ids = []
    with store.transaction() as con:
        for step in (20, 40):
            path = run_dir / "checkpoints" / f"step-{step}"
            ids.append(f"run1/step-{step}")
            con.execute("INSERT INTO checkpoints (id, run_id, step, path, base_model) "
                        "VALUES (?, 'run1', ?, ?, ?)", [ids[-1], step, str(path), str(tiny_model)])
    task = [{**r, "id": f"t{i}"} for i, r in
            enumerate(synthetic.generate(["repeat_twice"], 40, seed=7))]
    general = [{**r, "id": f"g{i}"} for i, r in
               enumerate(synthetic.generate(list(synthetic.BASE_FAMILIES), 8, seed=8))]
    sampling = SamplingConfig(max_new_tokens=12)
    save_suite(store, Suite(name="task", rows=task, metrics=["exact_match", "chrf"],
                            group_by="template", sampling=sampling))
    save_suite(store, Suite(name="general", role="general", rows=general,
                            metrics=["exact_match", "chrf"], group_by="template", sampling=sampling))
    return {"store": store, "base": f"base:{tiny_model}", "ckpts": ids}


def test_run_checkpoints_through_vllm_and_hf(trained_run):
    from evals.backends.hf import HFBackend
    from evals.backends.vllm import VLLMBackend

    store, base, ckpts = trained_run["store"], trained_run["base"], trained_run["ckpts"]
    models = [resolve_model(store, c) for c in [base, *ckpts]]
    assert models[1].adapter_path and "<|assistant|>" in models[1].chat_template
    engine = VLLMBackend(models, max_model_len=128)
    try:
        res = evaluate(store, "task", models, backend=engine)
        # Rows with the same prompt share one generation (same cache key).
        unique = len({r["messages"][0]["content"] for r in res.suite.rows})
        assert res.generation.n_generated == 3 * unique and res.generation.backend == "vllm"
        gen = evaluate(store, "general", models, backend=engine)
        assert gen.generation.n_generated == 3 * len({r["messages"][0]["content"]
                                                      for r in gen.suite.rows})
        prompts = render_prompts(models[0], res.suite.rows[:12])
        report = agreement(HFBackend(), engine, models, prompts, SamplingConfig(max_new_tokens=12))
    finally:
        engine.close()
    for rep in report:
        print(f"HF vs vLLM {rep.checkpoint}: {rep.n_equal}/{rep.n} identical", rep.differences[:1])
    assert all(rep.rate >= 0.9 for rep in report)
    # Everything is cached now: a cache-only reader finds vLLM's outputs (and says whose);
    # the HF backend would generate its own (outputs are never shared across backends).
    again = evaluate(store, "task", [base, *ckpts], backend=CacheOnly())
    assert again.generation.n_generated == 0 and again.generation.n_cached == 120
    assert again.generation.identity["backend"] == "vllm"

    comp = compare(store, "task", base, ckpts[-1], backend=CacheOnly(), n_boot=2000,
                   primary="chrf")
    chrf = next(m for m in comp.metrics if m["metric"] == "chrf")
    print("task chrf", chrf["baseline"]["mean"], "->", chrf["candidate"]["mean"],
          chrf["ci_low"], chrf["ci_high"], "clustered", chrf["clustered"])
    assert chrf["diff"] > 0 and chrf["ci_low"] > 0 and not comp.gate_failed   # it learned
    # Two templates only: too few clusters, so rows are treated as independent (and said so).
    assert not chrf["clustered"] and "only 2 groups" in chrf["warning"] and chrf["n"] == 40
    assert comp.improvements and comp.improvements[0]["reference"]

    forgot = forgetting(store, "general", ckpts[-1], backend=CacheOnly(), n_boot=2000)
    em = next(m for m in forgot.metrics if m["metric"] == "exact_match")
    print("general exact_match", em["baseline"]["mean"], "->", em["candidate"]["mean"],
          em["ci_low"], em["ci_high"], "flagged", forgot.gate_failed)
    assert forgot.baseline == base and forgot.n == 40
    assert next(m for m in forgot.metrics if m["metric"] == "chrf")["clustered"]   # 10 templates
    assert {"reverse/0", "add/1"} <= {b["group"] for b in forgot.breakdown_groups}
    assert {b["category"] for b in forgot.breakdown} == set(synthetic_families())
    curve = across_checkpoints(store, "task", [base, *ckpts], metric="chrf")
    assert [p["checkpoint"] for p in curve["points"]] == [base, *ckpts]
    assert curve["best"] != base


def synthetic_families() -> tuple[str, ...]:
    from training import synthetic

    return synthetic.BASE_FAMILIES
