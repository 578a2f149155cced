"""User data shown as typed: never as Markdown.

Streamlit renders Markdown in captions, labels, alerts and `st.markdown`: a row whose text
holds `![x](http://host/p.png)` would make the reviewer's browser fetch that URL, and a
backtick in a row id closes the code span around it. Row text goes to `st.text`, `st.code`
and dataframes; where a Markdown element must carry user data (a label, an alert, a line
mixing icons and names), `literal()` wraps it in a code span that it cannot close.
"""

from __future__ import annotations

import re

_BACKTICKS = re.compile(r"`+")


def literal(text: object) -> str:
    """`text` as an inline code span for a Markdown element: shown exactly as typed (on one
    line), with no formatting, link, image or HTML. The fence is one backtick longer than
    the longest run of backticks inside, and the padding spaces CommonMark strips again."""
    text = " ".join(str(text).splitlines())
    if not text:
        return ""
    fence = "`" * (max((len(m) for m in _BACKTICKS.findall(text)), default=0) + 1)
    return f"{fence} {text} {fence}"
