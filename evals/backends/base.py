"""What every generation backend shares: the Completion record, the Backend protocol, and
CacheOnly (a backend that only reads the generation cache).

Kept apart from the registry (`evals.backends`) so backend modules import this file and the
registry imports them: the arrows point one way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Protocol

from evals.types import ModelRef, SamplingConfig
from kernel.errors import StudioError


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

    def identity(self) -> dict:
        """What decides its outputs besides model, prompt and sampling: {"backend": name, plus
        numeric settings such as dtype and quantization}. Part of every generation cache key."""
        ...

    def generate(self, model: ModelRef, prompts: list[str],
                 sampling: SamplingConfig) -> list[list[Completion]]:
        """For each prompt, `sampling.n` completions (sample i of a prompt seeded with `sampling.seed_for(prompt, i)`)."""
        ...

    def close(self) -> None: ...


def identity_text(identity: dict) -> str:
    """Canonical JSON of a backend identity (stored with each generation, hashed into keys)."""
    return json.dumps(identity, sort_keys=True)


def describe_identity(identity: dict | None) -> str:
    """Short human form, e.g. 'vllm (dtype float32)'."""
    if not identity:
        return "unknown backend"
    rest = ", ".join(f"{k} {v}" for k, v in sorted(identity.items())
                     if k != "backend" and v is not None)
    return f"{identity.get('backend')}" + (f" ({rest})" if rest else "")


class CacheOnly:
    """A backend that never generates, for readers that must use stored outputs only (the
    ingest of a finished eval job, page views): a miss is an error that says what to run.

    `stands_for` is the identity of the backend whose outputs to read; None lets the cache
    pick the most recent backend that has every output (evals.generate.generate_cached).
    """

    name = "cache"

    def __init__(self, hint: str = "evaluate it first", stands_for: dict | None = None):
        self.hint = hint
        self.stands_for = stands_for

    def version(self) -> str:
        return "-"

    def identity(self) -> dict | None:
        return self.stands_for

    def generate(self, model, prompts, sampling):
        raise StudioError(f"{len(prompts)} outputs of {model.name} are not in the cache"
                          f"{' for ' + describe_identity(self.stands_for) if self.stands_for else ''}"
                          f": {self.hint}")

    def close(self) -> None:
        pass
