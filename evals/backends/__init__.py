"""Generation backends by name (a registry, like lm-evaluation-harness's `models/`).

One module per backend (`hf`, `vllm`, `openai`), each a class taking the models it will serve
plus its options. A backend is opened for a list of models (so vLLM can start one engine for
the base model and every LoRA adapter) and then asked per model for completions of rendered
prompt strings. Heavy libraries (torch, vllm, requests) load only when a backend is built.

Cache identity: every backend states the settings that change its numbers (dtype,
quantization, server); they are part of the generation cache key, so outputs are never shared
across backends or settings, not even greedy float32 ones where HF and vLLM agree.
"""

from __future__ import annotations

from evals.backends.base import Backend, CacheOnly, Completion, describe_identity, identity_text
from evals.backends.hf import HFBackend
from evals.backends.openai import OpenAIBackend
from evals.backends.vllm import VLLMBackend
from evals.types import ModelRef
from kernel.errors import StudioError

_CLASSES = {"hf": HFBackend, "vllm": VLLMBackend, "openai": OpenAIBackend}
BACKENDS: tuple[str, ...] = tuple(_CLASSES)

__all__ = ["BACKENDS", "Backend", "CacheOnly", "Completion", "HFBackend", "OpenAIBackend",
           "VLLMBackend", "backend_identity", "describe_identity", "get_backend",
           "identity_text"]


def _class(name: str) -> type:
    try:
        return _CLASSES[name]
    except KeyError:
        raise StudioError(f"--backend: unknown backend {name!r} "
                          f"(choose from {', '.join(BACKENDS)})") from None


def get_backend(name: str, models: list[ModelRef] | None = None, **options) -> Backend:
    """Start the named backend for these models; options go to its constructor."""
    return _class(name)(models or [], **options)


def backend_identity(backend: str | Backend, options: dict | None = None) -> dict | None:
    """The cache identity of a backend by name + options (without starting it), or of an
    open backend object."""
    if isinstance(backend, str):
        return _class(backend).cache_identity(options or {})
    identity = getattr(backend, "identity", None)
    return identity() if identity else {"backend": backend.name}
