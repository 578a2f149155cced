"""Chat formatting and labels on the real tiny tokenizer: prompt masked, response + EOS trained."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from kernel.errors import StudioError
from training import synthetic
from training.collate import PackedCollator, PaddedCollator
from training.formatting import (
    FALLBACK_CHAT_TEMPLATE,
    IGNORE_INDEX,
    encode,
    ensure_chat_template,
    row_messages,
)


@pytest.fixture(scope="module")
def tok(tiny_model):
    return AutoTokenizer.from_pretrained(tiny_model)


def _features(tok, rows, max_len=256):
    out = []
    for row in rows:
        enc = encode(tok, row_messages(row), max_len)
        out.append({"input_ids": enc.input_ids, "labels": enc.labels})
    return out


def test_real_batch_masks_prompt_and_trains_response_with_eos(tok):
    rows = synthetic.generate(["reverse", "repeat_twice"], 4, seed=3)
    batch = PaddedCollator(tok.pad_token_id)(_features(tok, rows))
    assistant_id = tok.convert_tokens_to_ids("<|assistant|>")
    for i, row in enumerate(rows):
        ids, labels, mask = batch["input_ids"][i], batch["labels"][i], batch["attention_mask"][i]
        n = int(mask.sum())
        start = (ids == assistant_id).nonzero()[0].item() + 1  # first response token
        assert (labels[:start] == IGNORE_INDEX).all(), "prompt tokens must be masked"
        assert (labels[start:n] == ids[start:n]).all(), "response tokens must be trained"
        assert (labels[n:] == IGNORE_INDEX).all(), "padding must be masked"
        assert ids[n - 1].item() == tok.eos_token_id and labels[n - 1].item() == tok.eos_token_id
        trained = tok.decode(labels[start:n - 1].tolist())
        assert trained == row["response"]


def test_multi_turn_and_system_trains_every_assistant_turn(tok):
    messages = [{"role": "system", "content": "be brief"},
                {"role": "user", "content": "reverse the word apple"},
                {"role": "assistant", "content": "elppa"},
                {"role": "user", "content": "write river in capitals"},
                {"role": "assistant", "content": "RIVER"}]
    enc = encode(tok, messages, 256)
    trained = [t for t in enc.labels if t != IGNORE_INDEX]
    assert tok.decode(trained) == "elppa<|eos|>RIVER<|eos|>"
    last_only = encode(tok, messages, 256, all_assistant_turns=False)
    assert tok.decode([t for t in last_only.labels if t != IGNORE_INDEX]) == "RIVER<|eos|>"


def test_truncation_keeps_length_and_flags_it(tok):
    row = {"instruction": "reverse the word " + "apple " * 60, "response": "x"}
    enc = encode(tok, row_messages(row), 32)
    assert len(enc.input_ids) == 32 and enc.truncated and enc.n_response_tokens == 0


def test_fallback_template_for_tokenizer_without_one(tok):
    bare = PreTrainedTokenizerFast(tokenizer_object=tok.backend_tokenizer, eos_token="<|eos|>")
    assert not bare.chat_template
    assert ensure_chat_template(bare) == FALLBACK_CHAT_TEMPLATE
    assert bare.pad_token == "<|eos|>"
    enc = encode(bare, row_messages({"instruction": "add 1 and 2", "response": "3"}), 128)
    assert bare.decode([t for t in enc.labels if t != IGNORE_INDEX]) == "3<|eos|>"


def test_rows_without_assistant_turn_are_rejected(tok):
    with pytest.raises(StudioError, match="no assistant turn"):
        encode(tok, [{"role": "user", "content": "hi"}], 64)
    with pytest.raises(StudioError, match="needs `messages`"):
        row_messages({"id": "r1", "instruction": "hi"})


def test_packed_batch_gives_same_per_example_loss_as_padded(tiny_model, tok):
    """Flattened examples with per-example position_ids: no attention crosses a boundary."""
    model = AutoModelForCausalLM.from_pretrained(tiny_model, attn_implementation="sdpa").eval()
    model.config.use_cache = False
    rows = synthetic.generate(["reverse", "add", "last_word"], 2, seed=7)
    feats = _features(tok, rows)
    packed = PackedCollator()(feats)
    padded = PaddedCollator(tok.pad_token_id)(feats)
    assert packed["input_ids"].shape[0] == 1 and "attention_mask" not in packed
    with torch.no_grad():
        lp = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"]).logits[0]
        ld = model(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"]).logits
        assert torch.allclose(model(**packed).loss, model(**padded).loss, atol=1e-5)
    offset = 0
    for i, f in enumerate(feats):
        n = len(f["input_ids"])
        labels = torch.tensor(f["labels"][1:])
        loss_p = torch.nn.functional.cross_entropy(lp[offset:offset + n - 1], labels)
        loss_d = torch.nn.functional.cross_entropy(ld[i, : n - 1], labels)
        assert torch.allclose(loss_p, loss_d, atol=1e-5), f"example {i}"
        offset += n
