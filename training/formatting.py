"""Turn conversations into (input_ids, labels) with loss on assistant turns only.

Why offsets and not a "response key": the prompt/response boundary is found by rendering the
chat template twice (conversation up to the generation prompt, and through the assistant turn)
and comparing *character* positions, then mapping them to tokens with the fast tokenizer's
offset mapping. That works for any template that renders prefixes consistently (Llama, Qwen,
the tiny model's) and never depends on how a marker tokenizes in context. The EOS token is part
of the response span (appended when the template does not emit it), so tuned models stop.
"""

from __future__ import annotations

from dataclasses import dataclass

from curation.errors import StudioError

IGNORE_INDEX = -100

# Used for tokenizers that ship no chat template; {{ eos_token }} closes every assistant turn.
FALLBACK_CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}### System:\n{{ m['content'] }}\n\n"
    "{% elif m['role'] == 'user' %}### User:\n{{ m['content'] }}\n\n"
    "{% elif m['role'] == 'assistant' %}### Assistant:\n{{ m['content'] }}{{ eos_token }}\n\n"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}### Assistant:\n{% endif %}"
)


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]
    truncated: bool

    @property
    def n_response_tokens(self) -> int:
        return sum(1 for t in self.labels if t != IGNORE_INDEX)


def ensure_chat_template(tokenizer) -> str:
    """The tokenizer's own template, or the built-in fallback (set on the tokenizer)."""
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE
    if tokenizer.eos_token is None:
        raise StudioError("tokenizer has no eos_token: set one so tuned models can stop")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer.chat_template


def row_messages(row: dict) -> list[dict]:
    """Canonical `messages`, or instruction/response (+system) for plain rows."""
    messages = row.get("messages")
    if messages:
        return [{"role": m["role"], "content": m["content"]} for m in messages]
    if row.get("instruction") is None or row.get("response") is None:
        raise StudioError(f"row {row.get('id', '?')}: needs `messages` or `instruction` and `response`")
    out = [{"role": "system", "content": row["system"]}] if row.get("system") else []
    return out + [{"role": "user", "content": row["instruction"]},
                  {"role": "assistant", "content": row["response"]}]


def _render(tokenizer, messages: list[dict], add_generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False,
                                         add_generation_prompt=add_generation_prompt)


def render_with_spans(tokenizer, messages: list[dict],
                      all_assistant_turns: bool = True) -> tuple[str, list[tuple[int, int]]]:
    """Full text and the character spans of the assistant turns to train on (incl. EOS)."""
    eos = tokenizer.eos_token
    text, raw_prev, spans = "", "", []
    last_assistant = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=-1)
    if last_assistant < 0:
        raise StudioError("conversation has no assistant turn to train on")
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = _render(tokenizer, messages[:i], add_generation_prompt=True)
        through = _render(tokenizer, messages[: i + 1], add_generation_prompt=False)
        if not prompt.startswith(raw_prev) or not through.startswith(prompt):
            raise StudioError("chat template does not render conversation prefixes consistently; "
                              "cannot locate the response tokens")
        # The trained span is the content through the first EOS after it (appended if the
        # template has none); separators the template puts after EOS stay untrained.
        turn = through[len(prompt):]
        if eos not in turn:
            turn += eos
        text += prompt[len(raw_prev):]
        if all_assistant_turns or i == last_assistant:
            spans.append((len(text), len(text) + turn.index(eos) + len(eos)))
        text += turn
        raw_prev = through
    return text, spans


def encode(tokenizer, messages: list[dict], max_seq_len: int,
           all_assistant_turns: bool = True) -> Encoded:
    """Token ids and labels: -100 on prompt tokens, ids on response tokens (and EOS)."""
    text, spans = render_with_spans(tokenizer, messages, all_assistant_turns)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    labels = []
    for tok, (start, end) in zip(ids, offsets, strict=True):
        inside = any(s <= start < e for s, e in spans) and end > start
        labels.append(tok if inside else IGNORE_INDEX)
    truncated = len(ids) > max_seq_len
    return Encoded(list(ids[:max_seq_len]), labels[:max_seq_len], truncated)


def prompt_text(tokenizer, messages: list[dict]) -> str:
    """The generation prompt for a conversation (everything before the last assistant turn)."""
    if messages and messages[-1]["role"] == "assistant":
        messages = messages[:-1]
    return _render(tokenizer, messages, add_generation_prompt=True)
