"""One generation interface, three backends (hf | vllm | openai), chosen by name.

A backend is opened for a list of models (so vLLM can start one engine for the base model and
every LoRA adapter) and then asked per model for completions of rendered prompt strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from curation.errors import StudioError
from evals.types import ModelRef, SamplingConfig

BACKENDS = ("hf", "vllm", "openai")


@dataclass
class Completion:
    """One sample: decoded text (special tokens skipped, cut at stop strings) and its token ids."""

    text: str
    token_ids: list[int] = field(default_factory=list)
    n_tokens: int = 0
    finish_reason: str | None = None


class Backend(Protocol):
    name: str

    def version(self) -> str: ...

    def generate(self, model: ModelRef, prompts: list[str],
                 sampling: SamplingConfig) -> list[list[Completion]]:
        """For each prompt, `sampling.n` completions (sample i seeded with `sampling.seed + i`)."""
        ...

    def close(self) -> None: ...


class CacheOnly:
    """A backend that never generates, for readers that must use stored outputs only (the
    ingest of a finished eval job, page views): a miss is an error that says what to run."""

    name = "cache"

    def __init__(self, hint: str = "evaluate it first"):
        self.hint = hint

    def version(self) -> str:
        return "-"

    def generate(self, model, prompts, sampling):
        raise StudioError(f"{len(prompts)} outputs of {model.name} are not in the cache: "
                          f"{self.hint}")

    def close(self) -> None:
        pass


def open_backend(name: str, models: list[ModelRef], **options) -> Backend:
    """Start the named backend for these models; options go to its constructor."""
    if name == "hf":
        from evals.backend_hf import HFBackend

        return HFBackend(models, **options)
    if name == "vllm":
        from evals.backend_vllm import VLLMBackend

        return VLLMBackend(models, **options)
    if name == "openai":
        from evals.backend_openai import OpenAIBackend

        return OpenAIBackend(models, **options)
    raise StudioError(f"--backend: unknown backend {name!r} (choose from {', '.join(BACKENDS)})")
