"""Turn conversations into (input_ids, labels) with loss on assistant turns only.

Why offsets and not a "response key": the prompt/response boundary is found by rendering the
chat template twice (conversation up to the generation prompt, and through the assistant turn)
and comparing *character* positions, then mapping them to tokens with the fast tokenizer's
offset mapping. That works for any template that renders prefixes consistently (Llama, Qwen,
the tiny model's) and never depends on how a marker tokenizes in context. The EOS token is part
of the response span (appended when the template does not emit it), so tuned models stop.

Tool calls: a row may carry `tools` (JSON schemas) and messages with `tool_calls` (assistant)
and role `tool` (results). A template that handles tools (it names `tools` and `tool_calls`,
as Qwen's, Llama 3.1's and Mistral's do) gets them as they are (`tools=` and the tool-call
messages, arguments as a dict). Any other template gets them rendered as plain text in the
Hermes/Qwen convention (`render_tools_as_text`): the schemas appended to the system prompt,
each call as `<tool_call>{"name": ..., "arguments": ...}</tool_call>` in the assistant turn
(trained), each result as a user turn `<tool_response>...</tool_response>` (masked).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass

from kernel.errors import StudioError

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


TOOL_MESSAGE_KEYS = ("tool_calls", "tool_call_id", "name")


def row_messages(row: dict) -> list[dict]:
    """Canonical `messages` (with their tool-call keys), or instruction/response (+system)."""
    messages = row.get("messages")
    if messages:
        return [{"role": m["role"], "content": m["content"],
                 **{k: m[k] for k in TOOL_MESSAGE_KEYS if m.get(k) is not None}}
                for m in messages]
    if row.get("instruction") is None or row.get("response") is None:
        raise StudioError(f"row {row.get('id', '?')}: needs `messages` or `instruction` and `response`")
    out = [{"role": "system", "content": row["system"]}] if row.get("system") else []
    return out + [{"role": "user", "content": row["instruction"]},
                  {"role": "assistant", "content": row["response"]}]


def row_tools(row: dict) -> list | None:
    """The row's tool schemas (a list), from `tools` or the stored row metadata."""
    tools = row.get("tools")
    if tools is None and isinstance(row.get("metadata"), dict):
        tools = row["metadata"].get("tools")
    if isinstance(tools, str):
        try:
            tools = json.loads(tools)
        except json.JSONDecodeError as exc:
            raise StudioError(f"row {row.get('id', '?')}: tools is not valid JSON") from exc
    return tools or None


def supports_tools(tokenizer) -> bool:
    """True when the chat template renders tool schemas and tool calls itself."""
    template = getattr(tokenizer, "chat_template", None) or ""
    if isinstance(template, dict):  # named templates: the one used by default
        template = template.get("default", "") or ""
    return "tools" in template and "tool_calls" in template


def _arguments_as_dict(call: dict) -> dict:
    """OpenAI stores arguments as JSON text; HF templates expect a dict."""
    fn = dict(call.get("function") or call)
    if isinstance(fn.get("arguments"), str):
        with contextlib.suppress(json.JSONDecodeError):  # free text stays as it is
            fn["arguments"] = json.loads(fn["arguments"])
    return {**call, "function": fn} if "function" in call else fn


def _call_text(call: dict) -> str:
    fn = _arguments_as_dict(call)
    fn = fn.get("function", fn)
    return ("<tool_call>\n" + json.dumps({"name": fn.get("name"),
                                         "arguments": fn.get("arguments")}, ensure_ascii=False)
            + "\n</tool_call>")


def render_tools_as_text(messages: list[dict], tools: list | None) -> list[dict]:
    """Plain role/content messages for a template without tool support (see module doc)."""
    out = []
    for m in messages:
        if m.get("tool_calls"):
            calls = "\n".join(_call_text(c) for c in m["tool_calls"])
            out.append({"role": "assistant",
                        "content": f"{m['content']}\n{calls}" if m.get("content") else calls})
        elif m["role"] == "tool":
            out.append({"role": "user",
                        "content": f"<tool_response>\n{m['content']}\n</tool_response>"})
        else:
            out.append({"role": m["role"], "content": m["content"]})
    if tools:
        schemas = "\n".join(json.dumps(t, ensure_ascii=False) for t in tools)
        text = f"# Tools\nYou may call these functions:\n<tools>\n{schemas}\n</tools>"
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": f"{out[0]['content']}\n\n{text}"}
        else:
            out.insert(0, {"role": "system", "content": text})
    return out


def prepare(tokenizer, messages: list[dict], tools: list | None) -> tuple[list[dict], list | None]:
    """(messages, tools) as the template will get them: native when it supports tools,
    else rendered as text (and no `tools=`)."""
    has_tool_turns = any(m.get("tool_calls") or m["role"] == "tool" for m in messages)
    if not tools and not has_tool_turns:
        return messages, None
    if supports_tools(tokenizer):
        native = [{**m, "tool_calls": [_arguments_as_dict(c) for c in m["tool_calls"]]}
                  if m.get("tool_calls") else m for m in messages]
        return native, tools
    return render_tools_as_text(messages, tools), None


def _render(tokenizer, messages: list[dict], add_generation_prompt: bool,
            tools: list | None = None) -> str:
    extra = {"tools": tools} if tools else {}
    return tokenizer.apply_chat_template(messages, tokenize=False,
                                         add_generation_prompt=add_generation_prompt, **extra)


def render_with_spans(tokenizer, messages: list[dict], all_assistant_turns: bool = True,
                      tools: list | None = None) -> tuple[str, list[tuple[int, int]]]:
    """Full text and the character spans of the assistant turns to train on (incl. EOS)."""
    messages, tools = prepare(tokenizer, messages, tools)
    eos = tokenizer.eos_token
    text, raw_prev, spans = "", "", []
    last_assistant = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=-1)
    if last_assistant < 0:
        raise StudioError("conversation has no assistant turn to train on")
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = _render(tokenizer, messages[:i], add_generation_prompt=True, tools=tools)
        through = _render(tokenizer, messages[: i + 1], add_generation_prompt=False, tools=tools)
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
           all_assistant_turns: bool = True, tools: list | None = None) -> Encoded:
    """Token ids and labels: -100 on prompt tokens, ids on response tokens (and EOS)."""
    text, spans = render_with_spans(tokenizer, messages, all_assistant_turns, tools)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    labels = []
    for tok, (start, end) in zip(ids, offsets, strict=True):
        inside = any(s <= start < e for s, e in spans) and end > start
        labels.append(tok if inside else IGNORE_INDEX)
    truncated = len(ids) > max_seq_len
    return Encoded(list(ids[:max_seq_len]), labels[:max_seq_len], truncated)


def encode_row(tokenizer, row: dict, max_seq_len: int, all_assistant_turns: bool = True) -> Encoded:
    """`encode` of a canonical row: its messages and its tool schemas."""
    return encode(tokenizer, row_messages(row), max_seq_len, all_assistant_turns, row_tools(row))


def prompt_text(tokenizer, messages: list[dict], tools: list | None = None) -> str:
    """The generation prompt for a conversation (everything before the last assistant turn)."""
    if messages and messages[-1]["role"] == "assistant":
        messages = messages[:-1]
    messages, tools = prepare(tokenizer, messages, tools)
    return _render(tokenizer, messages, add_generation_prompt=True, tools=tools)
