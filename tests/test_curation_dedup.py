"""Dedup: exact/near/semantic clusters with keepers, overrides, MinHash reuse, decontamination."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from curation.datasets import load_rows
from curation.decontam import contaminated, decontaminate
from curation.dedup import cluster_members, clusters, dedup, save_keepers
from curation.importer import import_file
from curation.near_dedup import (
    MinHashConfig,
    candidate_pairs,
    near_duplicate_pairs,
    near_duplicates_between,
    optimal_bands,
    signatures,
)
from kernel.errors import StudioError

WORDS = [f"word{i}" for i in range(400)]


def _doc(rng: random.Random, n: int = 40) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _import(store, tmp_path, name, records):
    f = tmp_path / f"{name}.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    import_file(store, f, name)


def test_minhash_estimates_jaccard_and_finds_planted_pairs():
    rng = random.Random(0)
    base = [_doc(rng) for _ in range(300)]
    planted = []
    for i in range(30):  # change 1 of 40 words: Jaccard of 3-shingles 35/41 = 0.85
        toks = base[i].split()
        toks[20] = "changed"
        planted.append(" ".join(toks))
    texts = base + planted
    pairs, sims = near_duplicate_pairs(texts, MinHashConfig(threshold=0.6))
    found = {tuple(p) for p in pairs.tolist()}
    assert found == {(i, 300 + i) for i in range(30)}
    assert np.all(sims >= 0.6)
    # signatures are deterministic and identical texts agree in every slot
    sig = signatures(["a b c d", "a b c d", ""])
    assert (sig[0] == sig[1]).all() and (sig[2] == np.iinfo(np.uint32).max).all()
    assert candidate_pairs(sig, 16, 8).tolist() == [[0, 1]]


def test_band_layout_follows_threshold():
    b_low, r_low = optimal_bands(0.5, 128)
    b_high, r_high = optimal_bands(0.9, 128)
    assert b_low * r_low <= 128 and b_high * r_high <= 128
    assert r_high > r_low  # stricter threshold -> more rows per band
    with pytest.raises(StudioError, match="threshold"):
        MinHashConfig(threshold=1.5)


def test_near_duplicates_between_reports_cross_pairs_only():
    a = ["the quick brown fox jumps over the lazy dog today", "alpha beta gamma delta epsilon",
         "the quick brown fox jumps over the lazy dog today"]
    b = [{"instruction": "unrelated words here entirely", "response": "nothing"},
         {"messages": [{"role": "user", "content": "the quick brown fox jumps over the lazy"},
                       {"role": "assistant", "content": "dog today"}]}]
    got = near_duplicates_between(a, b, threshold=0.8)
    assert sorted((i, j) for i, j, _ in got) == [(0, 1), (2, 1)]
    assert all(s >= 0.8 for *_, s in got)


def test_exact_dedup_normalizes_and_keeps_by_policy(store, tmp_path):
    _import(store, tmp_path, "e", [
        {"id": "a", "instruction": "What is DuckDB?", "output": "A database."},
        {"id": "b", "instruction": "what  is DUCKDB?", "output": "a   database. "},
        {"id": "c", "instruction": "What is DuckDB?", "output": "A\tdatabase."},
        {"id": "d", "instruction": "Other", "output": "Different."},
    ])
    got = dedup(store, "e", "exact")
    assert (got["n_clusters"], got["n_flagged"], got["n_kept"]) == (1, 2, 2)
    assert [r["id"] for r in load_rows(store, got["ref"])] == ["a", "d"]  # first kept
    longest = dedup(store, "e@v1", "exact", keep="longest", out="long")
    assert [r["id"] for r in load_rows(store, longest["ref"])] == ["b", "d"]
    assert len(load_rows(store, "e@long", include_dups=True)) == 4


def test_near_dedup_clusters_review_and_override(store, tmp_path):
    rng = random.Random(1)
    docs = [_doc(rng, 30) for _ in range(20)]
    near = docs[0].split()
    near[10] = "zzz"
    records = [{"id": f"r{i}", "instruction": d, "output": "same answer"} for i, d in enumerate(docs)]
    records.append({"id": "dup", "instruction": " ".join(near), "output": "same answer"})
    _import(store, tmp_path, "n", records)
    got = dedup(store, "n", "near", threshold=0.7, out="near")
    assert (got["n_clusters"], got["n_flagged"]) == (1, 1)
    found, total = clusters(store, "n@near")
    assert total == 1 and found[0]["size"] == 2
    members = {m["id"]: m for m in found[0]["members"]}
    assert set(members) == {"r0", "dup"} and not members["r0"]["is_dup"]
    assert found[0]["keeper"] == members["r0"]["uid"]
    over = save_keepers(store, "n@near", {found[0]["cluster"]: "dup"}, out="mine")
    ids = {r["id"] for r in load_rows(store, over["ref"])}
    assert "dup" in ids and "r0" not in ids and len(ids) == 20
    assert cluster_members(store, "n@mine", found[0]["cluster"])["keeper"] == members["dup"]["uid"]
    with pytest.raises(StudioError, match="not a member"):
        save_keepers(store, "n@near", {found[0]["cluster"]: "r5"})


def test_semantic_dedup_offline_fallback(store, tmp_path):
    # without a model, similarity is the TF-IDF cosine (lexical): a reworded question with the
    # same answer is a duplicate (cosine 0.88), unrelated rows are not
    _import(store, tmp_path, "s", [
        {"instruction": "How do I boil an egg?",
         "output": "Put the egg in boiling water for 8 minutes, then cool it in cold water."},
        {"instruction": "How can I boil an egg?",
         "output": "Put the egg in boiling water for 8 minutes, then cool it in cold water."},
        {"instruction": "Explain photosynthesis", "output": "Plants turn light into chemical energy."},
        {"instruction": "Best way to learn piano", "output": "Practice scales daily with a teacher."},
    ])
    got = dedup(store, "s", "semantic", threshold=0.8)
    assert got["n_clusters"] == 1 and got["n_flagged"] == 1
    kept = [r["instruction"] for r in load_rows(store, got["ref"])]
    assert "How can I boil an egg?" not in kept and len(kept) == 3
    (cluster,), _ = clusters(store, got["ref"])
    dup = next(m for m in cluster["members"] if m["is_dup"])
    assert 0.8 <= dup["similarity"] < 0.95 and dup["similar_to"] == cluster["keeper"]
    assert dedup(store, "s@v1", "semantic", threshold=0.9)["n_flagged"] == 0


def test_dedup_bad_arguments(store, tmp_path):
    _import(store, tmp_path, "b", [{"instruction": "x", "output": "y"}])
    with pytest.raises(StudioError, match="unknown method"):
        dedup(store, "b", "fuzzy")
    with pytest.raises(StudioError, match="no score 'quality'"):
        dedup(store, "b", "exact", keep="score:quality")
    with pytest.raises(StudioError, match="unknown keeper policy"):
        dedup(store, "b", "exact", keep="random")


def test_decontamination_flags_long_ngram_overlap(store, tmp_path):
    evals = ["the museum opens at nine and closes at five every weekday",
             "compute the sum of seven and eleven please"]
    assert contaminated(["bla bla the museum opens at nine and closes at five every day",
                         "a totally different sentence with many other words inside it",
                         "compute the sum of seven and eleven please"], evals, ngram=8).tolist() \
        == [True, False, True]
    _import(store, tmp_path, "ev", [{"instruction": e, "output": "x"} for e in evals])
    _import(store, tmp_path, "tr", [
        {"id": "leak", "instruction": "Q: the museum opens at nine and closes at five every weekday?",
         "output": "yes"},
        {"id": "ok", "instruction": "When does the library open?", "output": "At ten."}])
    got = decontaminate(store, "tr", "ev", ngram=8)
    assert got["n_flagged"] == 1 and got["flagged_ids"] == ["leak"]
    assert [r["id"] for r in load_rows(store, got["ref"])] == ["ok"]


def test_progress_hook_reaches_total(store, tmp_path):
    rng = random.Random(3)
    _import(store, tmp_path, "p", [{"instruction": _doc(rng, 20), "output": "x"}
                                   for _ in range(50)])
    calls: list[tuple[int, int]] = []
    dedup(store, "p", "near", progress=lambda done, total: calls.append((done, total)))
    assert calls and calls[-1] == (50, 50)
    assert all(a <= b for (a, _), (b, _) in zip(calls, calls[1:], strict=False))


def test_near_signatures_are_cached_per_version(store, tmp_path):
    rng = random.Random(4)
    docs = [_doc(rng, 30) for _ in range(30)]
    _import(store, tmp_path, "c", [{"instruction": d, "output": "x"} for d in docs + docs[:3]])
    first = dedup(store, "c@v1", "near", threshold=0.9, out="t9")
    cache = list((store.workspace.root / "cache" / "minhash").glob("*.npz"))
    assert len(cache) == 1
    calls: list = []
    second = dedup(store, "c@v1", "near", threshold=0.5, out="t5",
                   progress=lambda d, t: calls.append(d))
    assert calls == []  # no signature pass: reused from the cache
    assert first["n_flagged"] == second["n_flagged"] == 3
