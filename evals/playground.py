"""Chat with checkpoints: one answer per model for the same messages, through the same backends
(and chat templates) as evaluation, so what a user sees here is what an eval would score.

`open_chat(store, ["base:tiny", "run-x/step-4"], backend="hf")` loads the models once (one
engine for a base model and its adapters, as evaluation does) and `chat.reply(messages,
sampling)` answers from each; `chat_once` does both for the CLI. Nothing is cached in the
database: a playground answer is an experiment, not a result.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from evals.backends import get_backend
from evals.prompts import load_tokenizer
from evals.types import ModelRef, SamplingConfig
from kernel.errors import StudioError
from training.checkpoints import resolve

ROLES = ("system", "user", "assistant")


@dataclass
class Reply:
    """One model's answer to the conversation."""

    checkpoint: str
    text: str
    n_tokens: int
    finish_reason: str | None
    seconds: float

    def to_dict(self) -> dict:
        return {"checkpoint": self.checkpoint, "text": self.text, "n_tokens": self.n_tokens,
                "finish_reason": self.finish_reason, "seconds": round(self.seconds, 3)}


def check_messages(messages: list[dict]) -> list[dict]:
    """A conversation a model can answer: role/content turns ending with a user turn."""
    if not messages:
        raise StudioError("chat: the conversation is empty; write a message first")
    for i, m in enumerate(messages):
        if m.get("role") not in ROLES:
            raise StudioError(f"chat: message {i + 1}: field 'role' must be one of {ROLES}, "
                              f"got {m.get('role')!r}")
        if not isinstance(m.get("content"), str):
            raise StudioError(f"chat: message {i + 1}: field 'content' must be text")
    if messages[-1]["role"] != "user":
        raise StudioError("chat: the last message must be the user's (the model answers it)")
    if not messages[-1]["content"].strip():
        raise StudioError("chat: the message is empty; write something to send")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def render(model: ModelRef, messages: list[dict]) -> str:
    """The prompt text with the model's chat template (the one used in training)."""
    tok = load_tokenizer(model.adapter_path or model.base_model, model.chat_template)
    if not tok.chat_template:
        raise StudioError(f"model {model.name}: tokenizer has no chat template and none was given")
    return tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


class Chat:
    """Loaded models behind one backend; `reply` answers from each. Safe to share between
    browser sessions (one generation at a time)."""

    def __init__(self, models: list[ModelRef], backend: str = "hf",
                 backend_options: dict | None = None):
        if not models:
            raise StudioError("chat: pick at least one model")
        self.models = {m.name: m for m in models}
        self.backend_name = backend
        self.backend = get_backend(backend, list(self.models.values()), **(backend_options or {}))
        self._lock = threading.Lock()

    def reply(self, messages: list[dict], sampling: SamplingConfig | None = None,
              checkpoints: list[str] | None = None) -> list[Reply]:
        """One answer per checkpoint (all loaded ones by default), in the order given."""
        messages = check_messages(messages)
        sampling = sampling or SamplingConfig()
        if sampling.n != 1:
            raise StudioError("chat: one answer per model (sampling field 'n' must be 1)")
        wanted = checkpoints or list(self.models)
        unknown = [c for c in wanted if c not in self.models]
        if unknown:
            raise StudioError(f"chat: checkpoint {unknown[0]!r} is not loaded in this chat")
        out = []
        with self._lock:
            for name in wanted:
                model = self.models[name]
                prompt = render(model, messages)
                start = time.perf_counter()
                (completions,) = self.backend.generate(model, [prompt], sampling)
                first = completions[0]
                out.append(Reply(name, first.text, first.n_tokens, first.finish_reason,
                                 time.perf_counter() - start))
        return out

    def close(self) -> None:
        self.backend.close()


def open_chat(store, checkpoints: list[str], backend: str = "hf",
              backend_options: dict | None = None) -> Chat:
    """Resolve checkpoint ids (`base:MODEL`, `RUN/step-N`, folders) and load them once."""
    ids = list(dict.fromkeys(c.strip() for c in checkpoints if c and c.strip()))
    return Chat([resolve(store, c) for c in ids], backend, backend_options)


def chat_once(store, checkpoints: list[str], messages: list[dict],
              sampling: SamplingConfig | None = None, backend: str = "hf",
              backend_options: dict | None = None) -> list[Reply]:
    """Load, answer, close: one turn from each checkpoint (the CLI's `studio chat`)."""
    messages = check_messages(messages)
    chat = open_chat(store, checkpoints, backend, backend_options)
    try:
        return chat.reply(messages, sampling)
    finally:
        chat.close()


def base_of(store, checkpoint: str) -> str:
    """The base-model checkpoint id a run checkpoint was trained from (`base:MODEL`)."""
    from training.checkpoints import base_checkpoint_id

    return base_checkpoint_id(resolve(store, checkpoint).base_model)
