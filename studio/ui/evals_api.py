"""The Evaluate and Compare pages' one policy on top of the evals library.

The server process never generates: evaluations run as durable jobs (`evals.jobs`), and
comparisons read the generation cache only (a backend that refuses to generate), so a page
view never loads a model.
"""

from __future__ import annotations

from evals.backends import CacheOnly


def page_backend() -> CacheOnly:
    """Page views read cached outputs only, never load a model."""
    return CacheOnly("evaluate it on the Evaluate page first")
