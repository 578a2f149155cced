"""Streamlit's AppTest over one page of the studio (fast UI logic checks without a browser);
the `ui_env` fixture in tests/conftest.py points the page at a real workspace."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

PAGES = Path(__file__).resolve().parents[2] / "studio" / "views"


def page(name: str, timeout_s: float = 30) -> AppTest:
    return AppTest.from_file(str(PAGES / f"{name}.py"), default_timeout=timeout_s)
