"""LLM-as-judge through any backend: rubric grading and pairwise A/B in both orders.

Pairwise: each pair is judged as (A, B) and as (B, A); a verdict counts only when both orders
agree, otherwise it is a tie (removes position bias). The length-controlled win rate follows
AlpacaEval 2: a logistic regression of the candidate's win on the (normalized) length
difference; the LC win rate is the predicted win probability at equal length.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from evals.backends import Backend
from evals.prompts import render_prompts
from evals.types import ModelRef, SamplingConfig

GRADE_TEMPLATE = """You are grading an answer against a rubric.
Rubric: {rubric}
Question: {question}
Reference answer: {reference}
Answer to grade: {answer}
Reply with "Score: N" where N is an integer from {lo} to {hi}."""

PAIR_TEMPLATE = """Which answer to the question is better?
Question: {question}
Reference answer: {reference}
Answer A: {a}
Answer B: {b}
Reply with exactly one of: "A", "B" or "tie"."""

JUDGE_SAMPLING = SamplingConfig(max_new_tokens=16)


def _ask(backend: Backend, judge: ModelRef, texts: list[str],
         sampling: SamplingConfig = JUDGE_SAMPLING) -> list[str]:
    if getattr(backend, "endpoint", None) == "chat":
        prompts = texts          # the chat server applies its own template
    else:
        prompts = render_prompts(judge, [{"messages": [{"role": "user", "content": t}]}
                                         for t in texts])
    return [c[0].text for c in backend.generate(judge, prompts, sampling)]


def parse_score(text: str, lo: int, hi: int) -> float | None:
    m = re.search(r"score\s*[:=]?\s*(\d+)", text, re.I) or re.search(r"\b(\d+)\b", text)
    if m and lo <= int(m.group(1)) <= hi:
        return float(m.group(1))
    return None


def parse_choice(text: str) -> str | None:
    """'A', 'B' or 'tie' from a judge reply; None when unreadable."""
    t = text.strip().lower()
    if re.match(r"^(tie|equal|both)\b", t):
        return "tie"
    m = re.match(r"^(?:answer\s*)?\(?([ab])\b", t)
    return m.group(1).upper() if m else None


def grade(backend: Backend, judge: ModelRef, rows: list[dict], answers: list[str],
          rubric: str, scale: tuple[int, int] = (1, 5)) -> list[float | None]:
    """Single-answer rubric grades (None where the judge's reply had no valid score)."""
    texts = [GRADE_TEMPLATE.format(rubric=rubric, question=_question(r), answer=a,
                                   reference=r.get("response") or "(none)", lo=scale[0], hi=scale[1])
             for r, a in zip(rows, answers, strict=True)]
    return [parse_score(t, *scale) for t in _ask(backend, judge, texts)]


def _question(row: dict) -> str:
    users = [m["content"] for m in row.get("messages") or [] if m.get("role") == "user"]
    return users[-1] if users else row.get("instruction", "")


@dataclass
class PairwiseResult:
    n: int
    wins: int                    # candidate (B) wins, both orders agreeing
    losses: int
    ties: int                    # explicit ties + order disagreements + unreadable replies
    disagreements: int
    win_rate: float              # (wins + ties/2) / n
    lc_win_rate: float           # length-controlled
    verdicts: list[str] = field(default_factory=list)   # per row: 'B' | 'A' | 'tie'


def combine(first: str | None, second: str | None) -> str:
    """first: verdict with (A=baseline, B=candidate); second: with the order swapped."""
    swapped = {"A": "B", "B": "A", "tie": "tie", None: None}[second]
    if first is None or swapped is None or first != swapped:
        return "tie"
    return first


def length_controlled_win_rate(verdicts: list[str], len_a, len_b) -> float:
    """P(candidate wins | equal length) from a logistic fit on the length difference."""
    from sklearn.linear_model import LogisticRegression

    y_map = {"B": 1.0, "A": 0.0, "tie": 0.5}
    y = np.array([y_map[v] for v in verdicts])
    diff = np.asarray(len_b, float) - np.asarray(len_a, float)
    x = (diff / (np.std(diff) or 1.0)).reshape(-1, 1)
    # Ties count as half a win and half a loss (sample weights).
    xs = np.vstack([x, x])
    ys = np.concatenate([np.ones(len(y)), np.zeros(len(y))])
    ws = np.concatenate([y, 1 - y])
    keep = ws > 0
    if len(set(ys[keep])) < 2:
        return float(y.mean())
    fit = LogisticRegression(C=1e6).fit(xs[keep], ys[keep], sample_weight=ws[keep])
    return float(1 / (1 + np.exp(-fit.intercept_[0])))


def pairwise(backend: Backend, judge: ModelRef, rows: list[dict], baseline: list[str],
             candidate: list[str]) -> PairwiseResult:
    """Candidate vs baseline, judged in both orders."""
    def texts(a: list[str], b: list[str]) -> list[str]:
        return [PAIR_TEMPLATE.format(question=_question(r), reference=r.get("response") or "(none)",
                                     a=x, b=y) for r, x, y in zip(rows, a, b, strict=True)]

    first = [parse_choice(t) for t in _ask(backend, judge, texts(baseline, candidate))]
    second = [parse_choice(t) for t in _ask(backend, judge, texts(candidate, baseline))]
    verdicts = [combine(f, s) for f, s in zip(first, second, strict=True)]
    n = len(verdicts)
    wins, losses = verdicts.count("B"), verdicts.count("A")
    disagreements = sum(1 for f, s in zip(first, second, strict=True)
                        if f and s and combine(f, s) == "tie" and not (f == s == "tie"))
    len_a = [len(x.split()) for x in baseline]
    len_b = [len(x.split()) for x in candidate]
    return PairwiseResult(n, wins, losses, n - wins - losses, disagreements,
                          (wins + 0.5 * (n - wins - losses)) / n if n else 0.5,
                          length_controlled_win_rate(verdicts, len_a, len_b) if n else 0.5,
                          verdicts)


def judge_suite(store, suite: str, baseline: str, candidate: str, judge: str,
                backend: str = "hf", backend_options: dict | None = None,
                gen_backend: str = "hf", rubric: str | None = None) -> dict:
    """Pairwise (both orders, LC win rate) and optional rubric grades of two checkpoints' outputs."""
    from dataclasses import asdict

    from evals.backends import get_backend
    from evals.evaluate import evaluate
    from training.checkpoints import resolve as resolve_model

    res = evaluate(store, suite, [baseline, candidate], gen_backend)
    a, b = (m.name for m in res.models)
    rows = res.suite.rows
    out_a = [res.outputs(a, r["id"])[0] for r in rows]
    out_b = [res.outputs(b, r["id"])[0] for r in rows]
    ref = resolve_model(store, judge)     # 'base:<served name>' for a remote chat judge
    engine = get_backend(backend, [ref], **(backend_options or {}))
    try:
        pair = pairwise(engine, ref, rows, out_a, out_b)
        report = {"suite": res.suite.name, "baseline": a, "candidate": b, "judge": ref.name,
                  **{k: v for k, v in asdict(pair).items() if k != "verdicts"}}
        if rubric:
            for name, outs in (("baseline", out_a), ("candidate", out_b)):
                grades = [g for g in grade(engine, ref, rows, outs, rubric) if g is not None]
                report[f"{name}_grade"] = float(np.mean(grades)) if grades else None
                report[f"{name}_graded"] = len(grades)
    finally:
        engine.close()
    return report
