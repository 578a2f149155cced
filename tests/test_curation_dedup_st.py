"""Semantic dedup with a sentence-transformers model: a tiny BERT built offline here (random
weights, real tokenizer and forward pass), loaded by path like any local model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from curation.dedup import clusters, dedup
from curation.importer import import_file

pytest.importorskip("sentence_transformers", reason="the `semantic` extra is not installed")

TEXT = ("how do i boil an egg put the in boiling water for minutes cool it cold explain "
        "photosynthesis plants turn light into chemical energy best way to learn piano practice "
        "scales daily with a teacher what is capital of france paris")


@pytest.fixture(scope="module")
def tiny_st_model(tmp_path_factory):
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules as models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    root = tmp_path_factory.mktemp("tiny-st")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(TEXT.split())), *"?.,!0123456789"]
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=0,
                                num_attention_heads=2, intermediate_size=64,
                                max_position_embeddings=128, initializer_range=0.5))
    bert.save_pretrained(root / "bert")
    tok.save_pretrained(root / "bert")
    word = models.Transformer(str(root / "bert"), max_seq_length=128)
    pool = models.Pooling(word.get_embedding_dimension(), pooling_mode="mean")
    SentenceTransformer(modules=[word, pool], device="cpu").save(str(root / "st"))
    return root / "st"


def test_semantic_dedup_with_a_sentence_transformers_model(store, tmp_path, tiny_st_model):
    from sentence_transformers import SentenceTransformer

    rows = [
        {"id": "egg", "instruction": "How do I boil an egg?",
         "output": "Put the egg in boiling water for 8 minutes, then cool it in cold water."},
        {"id": "egg-copy", "instruction": "how do I  boil an egg ?",
         "output": "Put the egg in boiling water for 8 minutes, then cool it in cold water."},
        {"id": "photo", "instruction": "Explain photosynthesis",
         "output": "Plants turn light into chemical energy."},
        {"id": "piano", "instruction": "Best way to learn piano",
         "output": "Practice scales daily with a teacher."},
        {"id": "paris", "instruction": "What is the capital of France?", "output": "Paris."},
    ]
    f = tmp_path / "st.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows))
    import_file(store, f, "st")
    got = dedup(store, "st", "semantic", threshold=0.999, model=str(tiny_st_model))
    (cluster,), _ = clusters(store, got["ref"])
    by_id = {m["id"]: m for m in cluster["members"]}
    assert set(by_id) == {"egg", "egg-copy"} and by_id["egg-copy"]["is_dup"]
    # the similarity shown is the model's cosine between the row and its keeper
    enc = SentenceTransformer(str(tiny_st_model), device="cpu")
    texts = ["\n".join(m["content"] for m in by_id[k]["messages"]) for k in ("egg", "egg-copy")]
    a, b = enc.encode(texts, normalize_embeddings=True)
    assert by_id["egg-copy"]["similarity"] == pytest.approx(float(np.dot(a, b)), abs=1e-4)
    # at a lower threshold every flagged row is still within it of its keeper
    low = dedup(store, "st@v1", "semantic", threshold=0.9, model=str(tiny_st_model), out="low")
    found, _ = clusters(store, low["ref"], 1, 50)
    vecs = {m["id"]: enc.encode(["\n".join(t["content"] for t in m["messages"])],
                                normalize_embeddings=True)[0]
            for c in found for m in c["members"]}
    for c in found:
        keeper = next(m["id"] for m in c["members"] if m["uid"] == c["keeper"])
        for m in c["members"]:
            assert float(np.dot(vecs[m["id"]], vecs[keeper])) >= 0.9 - 1e-4
    assert low["n_flagged"] == sum(c["size"] - 1 for c in found)
