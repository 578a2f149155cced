"""Two model outputs side by side: correctness per side, and the words that differ.

Two separate signals, because one colour cannot carry both: each panel gets a badge and a
border saying whether that answer is right (✓, green) or wrong (✗, red), from its score on the
example's metric; the text diff only marks the words that differ between the two answers, in
one neutral highlight on both sides (difflib finds the matching blocks). Text is escaped.
"""

from __future__ import annotations

import difflib
import html
import re

TOKEN = re.compile(r"\s+|[^\s]+")
STYLE = """<style>
.tsdiff{display:grid;grid-template-columns:1fr 1fr;gap:12px;font:13px/1.5 ui-monospace,monospace}
.tsdiff>div{border:2px solid #e5e7eb;border-radius:8px;padding:8px 10px;white-space:pre-wrap;
  word-break:break-word;background:#fafafa}
.tsdiff>div.right{border-color:#16a34a;background:#f0fdf4}
.tsdiff>div.wrong{border-color:#dc2626;background:#fef2f2}
.tsdiff h6{margin:0 0 4px 0;font:600 12px system-ui,sans-serif;color:#374151}
.tsdiff .badge{display:inline-block;margin-right:6px;padding:0 6px;border-radius:9px;
  font:700 12px system-ui,sans-serif;color:#fff;background:#6b7280}
.tsdiff .right .badge{background:#16a34a}
.tsdiff .wrong .badge{background:#dc2626}
.tsdiff .chg{background:#fde68a;border-radius:3px}
</style>"""


def diff_spans(a: str, b: str) -> tuple[str, str]:
    """HTML for each side with the words that differ from the other side highlighted."""
    ta, tb = TOKEN.findall(a or ""), TOKEN.findall(b or "")
    left, right = [], []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, ta, tb, autojunk=False).get_opcodes():
        sa, sb = html.escape("".join(ta[i1:i2])), html.escape("".join(tb[j1:j2]))
        if op == "equal":
            left.append(sa)
            right.append(sb)
            continue
        if sa:
            left.append(f'<span class="chg">{sa}</span>')
        if sb:
            right.append(f'<span class="chg">{sb}</span>')
    return "".join(left), "".join(right)


def correctness(score: float | None, binary: bool) -> tuple[str, str]:
    """(css class, badge) of one answer: right/wrong for pass/fail metrics; a graded score is
    right at 1, wrong at 0 and shown as its value in between."""
    if score is None:
        return "", ""
    if score >= 1.0:
        return "right", "✓ right"
    if score <= 0.0:
        return "wrong", "✗ wrong"
    return ("right", "✓ right") if binary and score >= 0.5 else ("", f"score {score:.2f}")


def side_by_side(a: str, b: str, label_a: str, label_b: str, score_a: float | None = None,
                 score_b: float | None = None, binary: bool = True) -> str:
    left, right = diff_spans(a, b)
    panels = []
    for text, label, score in ((left, label_a, score_a), (right, label_b, score_b)):
        cls, badge = correctness(score, binary)
        tag = f'<span class="badge">{badge}</span>' if badge else ""
        panels.append(f'<div class="{cls}"><h6>{tag}{html.escape(label)}</h6>'
                      f'{text or "&nbsp;"}</div>')
    return f'{STYLE}<div class="tsdiff">{"".join(panels)}</div>'
