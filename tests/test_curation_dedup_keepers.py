"""Near and semantic dedup flag a row only when it is within the threshold of the row kept in
its place (leader clustering, not chains of pairs), and say how close it is (issue 9, item 2)."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import pytest

from curation.clustering import leader_clusters_from_pairs
from curation.dedup import clusters, dedup
from curation.importer import import_file
from curation.near_dedup import TOKEN
from curation.semantic import leader_clusters, tfidf_vectors
from kernel.errors import StudioError

# <repo>/../shared in CI; STUDIO_REAL_DATA points elsewhere (e.g. from a git worktree)
REAL = Path(os.environ.get("STUDIO_REAL_DATA", Path(__file__).resolve().parents[1].parent
                           / "shared" / "data" / "real"))


def test_leader_clusters_do_not_chain():
    # A~B and B~C (cos 0.87) but A and C are far apart (cos 0.5): connected components would
    # put all three in one cluster and flag C against keeper A
    angles = np.radians([0, 30, 60, 90 + 45])
    vecs = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    got = leader_clusters(vecs, threshold=0.8)
    assert got.leader.tolist() == [0, 0, 2, 3]
    assert got.similarity[1] == pytest.approx(np.cos(np.radians(30)), abs=1e-5)
    # the same from explicit pairs; a lower priority row cannot take a higher one
    pairs = np.array([[0, 1], [1, 2]])
    got = leader_clusters_from_pairs(3, pairs, np.array([0.9, 0.9], dtype=np.float32), 0.8)
    assert got.leader.tolist() == [0, 0, 2]


def test_keep_policy_decides_the_leader(store, tmp_path):
    # B (the longest) must lead when keep=longest: A and C are each close to B, not to each other
    base = [f"tok{k}" for k in range(40)]
    a, b, c = list(base), list(base), list(base)
    b[20:20] = ["extra1", "extra2"]
    c[10] = "other"
    c[30] = "another"
    rows = [{"id": "A", "instruction": " ".join(a), "output": "x"},
            {"id": "B", "instruction": " ".join(b), "output": "x y z"},
            {"id": "C", "instruction": " ".join(c), "output": "x"}]
    f = tmp_path / "k.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows))
    import_file(store, f, "k")
    got = dedup(store, "k", "near", threshold=0.7, keep="longest")
    (cluster,), _ = clusters(store, got["ref"])
    by_id = {m["id"]: m for m in cluster["members"]}
    assert not by_id["B"]["is_dup"] and by_id["A"]["is_dup"]
    assert all(m["similar_to"] == by_id["B"]["uid"] for m in cluster["members"])


def _shingle_set(text: str, n: int = 3) -> set:
    toks = TOKEN.findall(text.lower())
    toks = toks + [""] * (n - len(toks)) if 0 < len(toks) < n else toks
    return {tuple(toks[i:i + n]) for i in range(len(toks) - n + 1)}


def _real_rows_with_chains(files: list[str], n_chains: int, seed: int) -> list[dict]:
    """Real rows, plus chains of variants: each link changes one more word of the previous,
    so neighbours are close and the ends of a chain are not."""
    rows = []
    for name in files:
        rows += [{"instruction": r["instruction"], "input": r.get("input", ""),
                  "output": r["output"]} for r in json.loads((REAL / name).read_text())]
    rng = random.Random(seed)
    for r in rng.sample(rows, n_chains):
        words = r["output"].split(" ")
        if len(words) < 30:
            continue
        for _ in range(8):
            for _ in range(2):
                words[rng.randrange(len(words))] = f"w{rng.randrange(10**6)}"
            rows.append({**r, "output": " ".join(words)})
    return rows


def _check_keepers(store, ref: str, sim) -> int:
    """Every flagged row of `ref` is within the threshold of its keeper, measured by `sim`;
    returns how many rows were flagged."""
    threshold = store.query("SELECT params->>'threshold' AS t FROM versions WHERE "
                            "version = ?", [ref.split("@")[1]])[0]["t"]
    threshold = float(threshold)
    page, flagged = 1, 0
    while True:
        found, total = clusters(store, ref, page, 200)
        for c in found:
            keeper = next(m for m in c["members"] if m["uid"] == c["keeper"])
            for m in c["members"]:
                if m["is_dup"]:
                    flagged += 1
                    s = sim(_text(m), _text(keeper))
                    assert s >= threshold - 1e-4, (c["cluster"], s)
                    assert m["similarity"] == pytest.approx(s, abs=1e-3)
        if page * 200 >= total:
            return flagged
        page += 1


def _text(member: dict) -> str:
    return "\n".join(m["content"] for m in member["messages"])


def _jaccard(a: str, b: str) -> float:
    x, y = _shingle_set(a), _shingle_set(b)
    return len(x & y) / len(x | y)


@pytest.mark.parametrize("files,slow", [
    (["llamafactory_alpaca_en_demo.json"], False),
    pytest.param(["llamafactory_alpaca_en_demo.json", "alpacacleaned_gsm_8k_train.json"], True,
                 marks=pytest.mark.slow)])
def test_no_flagged_row_is_far_from_its_keeper_on_real_data(store, tmp_path, files, slow):
    if not REAL.exists():
        pytest.skip(f"real data not found at {REAL}")
    rows = _real_rows_with_chains(files, n_chains=300 if slow else 60, seed=0)
    f = tmp_path / "real.jsonl"
    f.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows))
    import_file(store, f, "real")
    near = dedup(store, "real@v1", "near", threshold=0.8, out="near")
    assert _check_keepers(store, near["ref"], _jaccard) == near["n_flagged"] > 0
    texts = {}

    def cosine(a: str, b: str) -> float:
        x = texts[a] @ texts[b].T
        return float(x.toarray()[0, 0])

    sem = dedup(store, "real@v1", "semantic", threshold=0.9, out="sem")
    # the fallback's cosine, recomputed here from the TF-IDF vectors of all rows
    from curation.datasets import load_rows
    all_texts = [_text(r) for r in load_rows(store, "real@v1")]
    vecs = tfidf_vectors(all_texts)
    texts.update({t: vecs[k] for k, t in enumerate(all_texts)})
    assert _check_keepers(store, sem["ref"], cosine) == sem["n_flagged"] > 0
    # the data has chains: joined as connected components (the old way), some rows would be
    # flagged against a keeper below the threshold
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from curation.near_dedup import MinHashConfig, signatures, verified_pairs

    cfg = MinHashConfig(threshold=0.8)
    pairs, _ = verified_pairs(all_texts, cfg, signatures(all_texts, cfg))
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])),
                       shape=(len(all_texts), len(all_texts)))
    labels = connected_components(graph, directed=False)[1]
    first: dict[int, int] = {}
    keeper = [first.setdefault(int(c), k) for k, c in enumerate(labels)]
    far = [k for k, kk in enumerate(keeper) if kk != k and _jaccard(all_texts[k],
                                                                   all_texts[kk]) < 0.8]
    assert far


def test_tidy_keeps_the_copy_without_stray_whitespace(store, tmp_path):
    """keep=tidy: of a whitespace-padded copy (first in the file) and the original, the
    original stays, in exact and in near dedup; first would keep the padded one."""
    words = " ".join(f"tok{k}" for k in range(30))
    rows = [{"id": "padded", "instruction": "  " + words.replace("tok5 ", "tok5   ") + " ",
             "output": "answer"},
            {"id": "tidy", "instruction": words, "output": "answer"},
            {"id": "edited", "instruction": words + " please", "output": "answer  "},
            {"id": "other", "instruction": "something else entirely", "output": "x"}]
    f = tmp_path / "t.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows))
    import_file(store, f, "t")
    for method, kwargs in (("exact", {}), ("near", {"threshold": 0.7})):
        first = dedup(store, "t@v1", method, keep="first", **kwargs)
        tidy = dedup(store, "t@v1", method, keep="tidy", **kwargs)
        (c_first,), _ = clusters(store, first["ref"])
        (c_tidy,), _ = clusters(store, tidy["ref"])
        keeper = {m["uid"]: m["id"] for m in c_tidy["members"]}[c_tidy["keeper"]]
        assert keeper == "tidy", (method, c_tidy)
        assert {m["uid"]: m["id"] for m in c_first["members"]}[c_first["keeper"]] == "padded"


def test_unknown_keeper_policy_names_the_choices(store, tmp_path):
    f = tmp_path / "u.jsonl"
    f.write_text(json.dumps({"instruction": "a", "output": "b"}))
    import_file(store, f, "u")
    with pytest.raises(StudioError, match="first, longest, tidy or score:NAME"):
        dedup(store, "u", "exact", keep="neatest")
