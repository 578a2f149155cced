"""Per-example metrics and the registry that names them.

A metric is `fn(output: str, row: dict, arg: str | None) -> float`, registered by name with
`@register_metric("name", binary=..., higher_is_better=...)`. Suites list metric specs as
strings: `"exact_match"`, `"regex:^\\d+$"`, `"contains:yes"` (the part after ':' is `arg`).
Binary (pass/fail) metrics get exact McNemar tests; `higher_is_better=None` (length) is never
gated on.
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from evals.prompts import reference
from kernel.errors import StudioError

MetricFn = Callable[[str, dict, "str | None"], float]


@dataclass(frozen=True)
class Metric:
    name: str
    fn: MetricFn
    binary: bool = False
    higher_is_better: bool | None = True
    needs_arg: bool = False


REGISTRY: dict[str, Metric] = {}


def register_metric(name: str, binary: bool = False, higher_is_better: bool | None = True,
                    needs_arg: bool = False):
    """Decorator: make `fn(output, row, arg)` available to suites under `name`."""
    def wrap(fn: MetricFn) -> MetricFn:
        REGISTRY[name] = Metric(name, fn, binary, higher_is_better, needs_arg)
        return fn

    return wrap


@dataclass(frozen=True)
class MetricSpec:
    """A metric as a suite names it: registry name plus optional argument."""

    spec: str

    @property
    def name(self) -> str:
        return self.spec.split(":", 1)[0]

    @property
    def arg(self) -> str | None:
        return self.spec.split(":", 1)[1] if ":" in self.spec else None

    @property
    def metric(self) -> Metric:
        return get_metric(self.spec)

    def score(self, output: str, row: dict) -> float:
        return float(self.metric.fn(output, row, self.arg))


def get_metric(spec: str) -> Metric:
    name, _, arg = spec.partition(":")
    if name not in REGISTRY:
        raise StudioError(f"metric {spec!r}: unknown name {name!r} (known: {', '.join(sorted(REGISTRY))})")
    metric = REGISTRY[name]
    if metric.needs_arg and not arg:
        raise StudioError(f"metric {spec!r}: needs an argument, e.g. '{name}:VALUE'")
    if name == "regex":
        try:
            re.compile(arg)
        except re.error as exc:
            raise StudioError(f"metric {spec!r}: invalid regular expression ({exc})") from exc
    return metric


def validate_specs(specs: list[str]) -> list[str]:
    if not specs:
        raise StudioError("suite: field 'metrics' is empty")
    for s in specs:
        get_metric(s)
    return list(specs)


# --- text helpers ---------------------------------------------------------------------------

_PUNCT = str.maketrans("", "", string.punctuation)


def normalize(text: str) -> str:
    """Lowercase, drop punctuation and articles, collapse whitespace (SQuAD-style)."""
    text = (text or "").lower().translate(_PUNCT)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _ref(row: dict) -> str:
    ref = reference(row)
    if ref is None:
        raise StudioError(f"row {row.get('id')!r}: field 'response' (the reference) is missing")
    return ref


def lcs_length(a: list[str], b: list[str]) -> int:
    """Longest common subsequence length, O(len(a)*len(b)) time, O(len(b)) memory."""
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, 1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def _f1(overlap: float, n_pred: int, n_ref: int) -> float:
    if n_pred == 0 and n_ref == 0:
        return 1.0
    if overlap == 0:
        return 0.0
    p, r = overlap / n_pred, overlap / n_ref
    return 2 * p * r / (p + r)


def chrf(hyp: str, ref: str, max_n: int = 6, beta: float = 2.0) -> float:
    """chrF (Popovic 2015): character n-gram F-beta averaged over n=1..6, spaces removed, 0-1."""
    hyp, ref = hyp.replace(" ", ""), ref.replace(" ", "")
    if not hyp and not ref:
        return 1.0
    precs, recs = [], []
    for n in range(1, max_n + 1):
        h = Counter(hyp[i:i + n] for i in range(len(hyp) - n + 1))
        r = Counter(ref[i:i + n] for i in range(len(ref) - n + 1))
        if not h or not r:
            continue
        match = sum((h & r).values())
        precs.append(match / sum(h.values()))
        recs.append(match / sum(r.values()))
    if not precs:
        return 0.0
    p, r = sum(precs) / len(precs), sum(recs) / len(recs)
    if p + r == 0:
        return 0.0
    return (1 + beta**2) * p * r / (beta**2 * p + r)


# --- built-in metrics -----------------------------------------------------------------------

@register_metric("exact_match", binary=True)
def exact_match(output: str, row: dict, arg: str | None = None) -> float:
    return float(normalize(output) == normalize(_ref(row)))


@register_metric("token_f1")
def token_f1(output: str, row: dict, arg: str | None = None) -> float:
    pred, ref = normalize(output).split(), normalize(_ref(row)).split()
    return _f1(sum((Counter(pred) & Counter(ref)).values()), len(pred), len(ref))


@register_metric("rouge_l")
def rouge_l(output: str, row: dict, arg: str | None = None) -> float:
    pred, ref = normalize(output).split(), normalize(_ref(row)).split()
    return _f1(lcs_length(pred, ref), len(pred), len(ref))


@register_metric("chrf")
def chrf_metric(output: str, row: dict, arg: str | None = None) -> float:
    return chrf(output or "", _ref(row))


@register_metric("contains", binary=True)
def contains(output: str, row: dict, arg: str | None = None) -> float:
    """Output contains `arg` (case-insensitive), or the normalized reference when no arg."""
    needle = normalize(arg) if arg else normalize(_ref(row))
    return float(needle in normalize(output))


@register_metric("regex", binary=True, needs_arg=True)
def regex(output: str, row: dict, arg: str | None = None) -> float:
    return float(re.search(arg or "", output or "") is not None)


@register_metric("json_valid", binary=True)
def json_valid(output: str, row: dict, arg: str | None = None) -> float:
    try:
        json.loads(output)
    except (ValueError, TypeError):
        return 0.0
    return 1.0


@register_metric("length", higher_is_better=None)
def length(output: str, row: dict, arg: str | None = None) -> float:
    """Output length in whitespace tokens (reported, never gated)."""
    return float(len((output or "").split()))
