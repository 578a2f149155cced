"""Suites from a curated dataset's held-out split, contamination flags, across-run curve."""

from __future__ import annotations

import json

import pytest

from curation.importer import import_file
from evals.compare import across_checkpoints
from evals.evaluate import evaluate
from evals.suites import list_suites, load_suite, suite_from_dataset
from evals.types import ModelRef, SamplingConfig
from kernel.errors import NotFoundError, StudioError
from tests.helpers.fixtures import make_lora_adapter
from training.checkpoints import resolve as resolve_model

SENTENCE = "please write the word {} three times separated by commas and then stop"
WORDS = ["apple", "river", "stone", "cloud", "tiger", "lemon", "piano", "rocket"]


@pytest.fixture
def dataset(store, tmp_path):
    """Dataset 'ds' (v1): 8 rows, the last 3 held out, one of them a copy of a training row."""
    path = tmp_path / "ds.jsonl"
    rows = [{"id": f"w{i}", "instruction": SENTENCE.format(w), "response": f"{w}, {w}, {w}",
             "category": "triple"} for i, w in enumerate(WORDS)]
    rows[7] = {**rows[1], "id": "w7copy"}          # held-out copy of training row w1
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    import_file(store, path, "ds")
    with store.transaction() as con:   # hold out w5, w6, w7copy (curation's split does this)
        con.execute("UPDATE version_rows SET split = 'heldout' WHERE dataset = 'ds' AND uid IN "
                    "(SELECT uid FROM rows WHERE dataset = 'ds' AND id IN ('w5', 'w6', 'w7copy'))")
    return "ds@v1"


def test_suite_from_dataset_heldout(store, dataset):
    suite = suite_from_dataset(store, "ds-heldout", dataset, metrics=["exact_match", "rouge_l"],
                               group_by="category", sampling=SamplingConfig(max_new_tokens=8))
    assert sorted(r["id"] for r in suite.rows) == ["w5", "w6", "w7copy"]
    loaded = load_suite(store, "ds-heldout")
    assert loaded.rows[0]["response"].count(",") == 2 and loaded.rows[0]["group"] == "triple"
    assert [s["name"] for s in list_suites(store)] == ["ds-heldout"]
    with pytest.raises(StudioError, match="already exists"):
        suite_from_dataset(store, "ds-heldout", dataset)
    with pytest.raises(NotFoundError):
        suite_from_dataset(store, "x", "nope@v9")
    with pytest.raises(StudioError, match="field 'role'"):
        suite_from_dataset(store, "y", dataset, role="other")
    assert [s["name"] for s in list_suites(store)] == ["ds-heldout"]


@pytest.mark.slow
def test_contamination_and_curve_across_checkpoints(store, dataset, tiny_model, tmp_path):
    suite_from_dataset(store, "s", dataset, metrics=["chrf"],
                       sampling=SamplingConfig(max_new_tokens=6))
    adapters = [make_lora_adapter(tiny_model, tmp_path / f"step-{i}", seed=i, scale=s)
                for i, s in ((1, 0.0), (2, 0.5))]
    with store.transaction() as con:
        con.execute("INSERT INTO runs (id, kind, state, config, run_dir) VALUES "
                    "('run1', 'train', 'completed', ?, ?)", [json.dumps({"dataset": "ds@v1"}),
                                                             str(tmp_path)])
    refs = [resolve_model(None, str(a)) for a in adapters]
    named = [ModelRef(base_model=r.base_model, adapter_path=r.adapter_path,
                      name=f"run1/step-{i}") for i, r in enumerate(refs, 1)]
    res = evaluate(store, "s", named, check_contamination=True)
    flagged = res.contamination["run1/step-1"]
    assert [(f["row_id"], f["train_id"]) for f in flagged] == [("w7copy", "w1")]
    stored = store.query("SELECT contamination FROM eval_runs WHERE checkpoint = 'run1/step-1'")
    assert json.loads(stored[-1]["contamination"])[0]["row_id"] == "w7copy"
    curve = across_checkpoints(store, "s", [f"base:{tiny_model}", str(adapters[1])])
    assert [p["n"] for p in curve["points"]] == [3, 3]
    assert curve["best"] in {p["checkpoint"] for p in curve["points"]}
    means = {p["checkpoint"]: p["mean"] for p in curve["points"]}
    assert curve["best"] == max(means, key=means.get)


def test_each_prompt_and_sample_has_its_own_reproducible_seed():
    s = SamplingConfig(temperature=1.0, n=3, seed=5)
    prompts = [f"reverse word{i}" for i in range(200)]
    seeds = {s.seed_for(p, 0) for p in prompts}
    assert len(seeds) == len(prompts)  # no two prompts share their draws
    assert len({s.seed_for(prompts[0], i) for i in range(3)}) == 3
    assert s.seed_for(prompts[0], 1) == SamplingConfig(temperature=0.5, seed=5).seed_for(prompts[0], 1)
    assert s.seed_for(prompts[0], 1) != SamplingConfig(temperature=1.0, seed=6).seed_for(prompts[0], 1)
    assert all(0 <= x < 2**31 for x in seeds)  # what every backend accepts as a seed
