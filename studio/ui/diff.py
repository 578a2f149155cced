"""Word-level diff of two model outputs, rendered as two highlighted columns.

difflib finds the matching blocks; we only wrap the changed words of each side in a
coloured span (removed on the baseline side, added on the candidate side). Text is escaped.
"""

from __future__ import annotations

import difflib
import html
import re

TOKEN = re.compile(r"\s+|[^\s]+")
STYLE = """<style>
.tsdiff{display:grid;grid-template-columns:1fr 1fr;gap:12px;font:13px/1.5 ui-monospace,monospace}
.tsdiff>div{border:1px solid #e5e7eb;border-radius:8px;padding:8px 10px;white-space:pre-wrap;
  word-break:break-word;background:#fafafa}
.tsdiff h6{margin:0 0 4px 0;font:600 12px system-ui,sans-serif;color:#6b7280}
.tsdiff .del{background:#fee2e2;color:#991b1b;text-decoration:line-through;border-radius:3px}
.tsdiff .ins{background:#dcfce7;color:#166534;border-radius:3px}
</style>"""


def diff_spans(a: str, b: str) -> tuple[str, str]:
    """HTML for each side with the words that differ highlighted."""
    ta, tb = TOKEN.findall(a or ""), TOKEN.findall(b or "")
    left, right = [], []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, ta, tb, autojunk=False).get_opcodes():
        sa, sb = html.escape("".join(ta[i1:i2])), html.escape("".join(tb[j1:j2]))
        if op == "equal":
            left.append(sa)
            right.append(sb)
            continue
        if sa:
            left.append(f'<span class="del">{sa}</span>')
        if sb:
            right.append(f'<span class="ins">{sb}</span>')
    return "".join(left), "".join(right)


def side_by_side(a: str, b: str, label_a: str, label_b: str) -> str:
    left, right = diff_spans(a, b)
    return (f'{STYLE}<div class="tsdiff"><div><h6>{html.escape(label_a)}</h6>{left or "&nbsp;"}'
            f'</div><div><h6>{html.escape(label_b)}</h6>{right or "&nbsp;"}</div></div>')
