"""Scores: heuristic signals, histograms, and perplexity/IFD under a real causal LM."""

from __future__ import annotations

import json
import math

import pytest

from curation.browse import browse, count
from curation.importer import import_file
from curation.overview import histogram
from curation.scoring import score
from kernel.errors import StudioError
from tests.conftest import IMPORT_PATHS, store_on_path

ROWS = [
    {"id": "good", "instruction": "What is the capital of France?",
     "output": "Paris is the capital of France."},
    {"id": "de", "instruction": "Sag etwas", "output": "Das ist nicht die Antwort, die ich will."},
    {"id": "refuse", "instruction": "Do it", "output": "I'm sorry, but I cannot help with that."},
    {"id": "repeat", "instruction": "Echo", "output": "go go go go go go go go go go go go go."},
    {"id": "empty", "instruction": "Nothing", "output": "   "},
    {"id": "cut", "instruction": "Tell a story", "output": "Once upon a time a dragon lived in a big"},
    {"id": "sym", "instruction": "Symbols", "output": "#### $$$$ !!!! ????"},
]


@pytest.fixture(params=IMPORT_PATHS)
def store(request, workspace):
    """Every test here runs with and without the store process: with one, scores and the new
    version's rows go in one transaction inside it (kernel.staging._write_in_one)."""
    yield from store_on_path(workspace, request.param)


@pytest.fixture
def ds(store, tmp_path):
    f = tmp_path / "h.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    import_file(store, f, "h")
    return store


def _scores(store, ref) -> dict[str, dict]:
    rows, _ = browse(store, ref, page_size=100)
    return {r["id"]: r["scores"] for r in rows}


def test_heuristic_signals(ds):
    got = score(ds, "h", "heuristic")
    assert got["ref"] == "h@v2" and "rep_ngram_ratio" in got["scores"]
    s = _scores(ds, "h@v2")
    assert s["good"]["resp_chars"] == 31 and s["good"]["resp_tokens"] == 7
    assert s["good"]["lang"] == "en" and s["de"]["lang"] == "de"
    assert s["refuse"]["refusal"] == 1 and s["good"]["refusal"] == 0
    assert s["repeat"]["rep_ngram_ratio"] > 0.8 and s["good"]["rep_ngram_ratio"] == 0
    assert s["empty"]["empty_response"] == 1 and s["good"]["empty_response"] == 0
    assert s["cut"]["truncated"] == 1 and s["good"]["truncated"] == 0
    assert s["sym"]["non_alnum_ratio"] > 0.7 and s["good"]["non_alnum_ratio"] < 0.1
    assert math.isclose(s["good"]["resp_inst_ratio"], 31 / 30)
    assert count(ds, "h", "refusal=0 and empty_response=0 and lang='en'") == 2  # good, cut


def test_histogram_numeric_and_labels(ds):
    score(ds, "h", "heuristic")
    h = histogram(ds, "h", "resp_chars", bins=5)
    assert h["n"] == 7 and sum(h["counts"]) == 7 and len(h["edges"]) == 6
    assert h["min"] == 3 and h["counts"][0] >= 1
    assert histogram(ds, "h", "lang")["labels"]["en"] >= 3
    with pytest.raises(StudioError, match="no score 'ppl'"):
        histogram(ds, "h", "ppl")


def test_model_scorer_needs_a_model(ds):
    with pytest.raises(StudioError, match="needs --model"):
        score(ds, "h", "ifd")
    with pytest.raises(StudioError, match="cannot load model"):
        score(ds, "h", "perplexity", model="/nonexistent/model")


@pytest.mark.slow
def test_perplexity_and_ifd_with_tiny_model(ds, tiny_model):
    from transformers import AutoTokenizer

    from curation.model_scores import encode

    tok = AutoTokenizer.from_pretrained(tiny_model)
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there"}]
    ids, start, alone = encode(tok, msgs, 256)
    assert tok.decode(ids[start:]).startswith("hello there")  # only response tokens scored
    got = score(ds, "h", "ifd", model=str(tiny_model), batch_size=3)
    assert set(got["scores"]) == {"resp_loss", "ppl", "resp_loss_alone", "ifd"}
    s = _scores(ds, got["ref"])
    for rid in ("good", "de", "repeat"):
        assert s[rid]["ppl"] > 1 and math.isclose(s[rid]["ppl"], math.exp(s[rid]["resp_loss"]),
                                                  rel_tol=1e-6)
        assert math.isclose(s[rid]["ifd"], s[rid]["resp_loss"] / s[rid]["resp_loss_alone"],
                            rel_tol=1e-6)
    # batching must not change results: batch size 1 gives the same losses
    one = score(ds, "h@v1", "perplexity", model=str(tiny_model), batch_size=1, out="b1")
    s1 = _scores(ds, one["ref"])
    assert all(math.isclose(s1[k]["resp_loss"], s[k]["resp_loss"], rel_tol=1e-4) for k in s)


def test_one_histogram_for_lengths_and_scores(ds):
    """Lengths need no scoring first; both kinds share the score histogram's shape."""
    from curation.datasets import load_rows

    h = histogram(ds, "h", "response chars", bins=4)
    lengths = [len(r["response"]) for r in load_rows(ds, "h")]
    assert h["n"] == len(lengths) and sum(h["counts"]) == len(lengths)
    assert (h["min"], h["max"]) == (min(lengths), max(lengths))
    assert len(h["edges"]) == 5 and h["labels"] == {}
