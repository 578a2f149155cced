"""`literal()`: user text inside Streamlit's Markdown elements renders as typed (checked with
the same CommonMark rules through markdown-it, a Markdown parser the venv already has)."""

from __future__ import annotations

import html

import pytest

from studio.ui.text import literal

HOSTILE = ["![x](http://127.0.0.1:9/p.png)", "a` ![y](http://h/i.png) `b", "<img src=x>",
           "**bold** _it_ # head", "[link](javascript:alert(1))", "$x^2$ :red[red] :material/star:",
           "``` fence", "` edge `", "back\\slash & &amp; |t|a|", "run 3 finished"]


@pytest.mark.parametrize("text", HOSTILE)
def test_literal_renders_as_the_plain_text(text):
    markdown_it = pytest.importorskip("markdown_it")
    out = markdown_it.MarkdownIt("commonmark").render("label " + literal(text) + " end")
    assert "<img" not in out and "<a " not in out and "<strong" not in out
    assert out.count("<code>") == 1
    shown = html.unescape(out.split("<code>", 1)[1].split("</code>", 1)[0])
    assert shown == text


def test_lines_are_joined_and_empty_stays_empty():
    assert literal("a\nb") == literal("a b") and literal("") == ""
