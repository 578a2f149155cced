"""Run groups made before migration 0070 keep working and old ablations become groups; the
per-step attribution (evals.ablation.step_differences, used by ablations and the demo) on
constructed per-example scores with a known answer, and the demo's text for it."""

from __future__ import annotations

import numpy as np
import pytest

from evals.ablation import step_differences
from kernel import migrations
from kernel import store as store_mod
from kernel.store import Store
from studio.demo.attribution import attribution_lines, demo_chain
from training.groups import get_group, list_groups, run_groups_by_run


def test_migration_0070_keeps_seed_groups_and_turns_ablations_into_groups(tmp_path, monkeypatch):
    full = list(migrations.MIGRATIONS)
    monkeypatch.setattr(store_mod, "MIGRATIONS", [m for m in full if not m[0].startswith("0070")])
    with Store(tmp_path / "ws").connect() as con:
        con.execute("INSERT INTO run_groups (id, name, config) VALUES ('group-1', 'raw', '{}')")
        con.execute("INSERT INTO run_group_members VALUES ('group-1', 'run-1', 0)")
        con.execute("INSERT INTO ablations (id, ref, suite, config, seeds, versions) VALUES "
                    "('ablate-1', 'd@v2', 'held', '{}', '[0]', '[\"d@v1\", \"d@v2\"]')")
        con.execute("INSERT INTO ablation_runs VALUES ('ablate-1', 'd@v1', 0, 'run-2'), "
                    "('ablate-1', 'd@v2', 0, 'run-3')")
    monkeypatch.setattr(store_mod, "MIGRATIONS", full)
    store_mod._migrated.clear()
    store = Store(tmp_path / "ws")
    assert {(g["id"], g["kind"]) for g in list_groups(store)} == {("group-1", "seeds"),
                                                                 ("ablate-1", "ablation")}
    by_run = run_groups_by_run(store)
    assert by_run["run-3"] == [{"group_id": "ablate-1", "group": "ablate-1", "kind": "ablation",
                                "params": {"dataset": "d@v2"}, "note": None}]
    assert by_run["run-1"][0]["params"] == {} and by_run["run-1"][0]["kind"] == "seeds"
    assert [m["run_id"] for m in get_group(store, "ablate-1")["members"]] == ["run-2", "run-3"]


def test_step_differences_attribute_the_gain_to_the_step_that_made_it():
    rng = np.random.default_rng(0)
    n = 200
    raw = (rng.random((2, n)) < 0.3).astype(float)                    # 2 seeds
    dedup = raw.copy()                                               # changed nothing
    filt = np.maximum(dedup, (rng.random((2, n)) < 0.6).astype(float))  # big gain
    replay = filt * (rng.random((2, n)) < 0.97)                      # a small loss, if any
    chain = demo_chain("d@v1", 100, [{"name": "exact dedup", "ref": "d@v2", "n_kept": 90},
                                     {"name": "loss filter", "ref": "d@v3", "n_kept": 70}],
                       "d-mix@v1", 85)
    scores = {ref: [{"exact_match": m[s]} for s in range(2)]
              for ref, m in zip([c["ref"] for c in chain], [raw, dedup, filt, replay],
                                strict=True)}
    rep = step_differences(chain, scores, ["exact_match"])
    by_op = {s["operation"]: s for s in rep["steps"]}
    assert by_op["exact dedup"]["diff"] == 0 and by_op["exact dedup"]["verdict"] == \
        "no measurable effect"
    assert by_op["loss filter"]["diff"] == pytest.approx(filt.mean() - dedup.mean())
    assert by_op["loss filter"]["verdict"] == "helped" and by_op["loss filter"]["low"] > 0
    assert by_op["+ replay"]["train_rows_removed"] == -15           # replay adds rows
    assert by_op["+ replay"]["diff"] <= 0 and by_op["+ replay"]["n_seeds"] == 2
    assert all(s["p_holm"] >= s["p"] for s in rep["steps"])
    assert [v["metrics"]["exact_match"] for v in rep["versions"]] == pytest.approx(
        [m.mean() for m in (raw, dedup, filt, replay)])

    text = "\n".join(attribution_lines({"task": {"suite": "held", "n_examples": n, **rep}}))
    assert "task suite held (n = 200)" in text
    assert "loss filter" in text and "-20 rows" in text and "helped" in text
    assert "+ replay" in text and "+15 rows" in text
