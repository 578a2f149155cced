"""Text search through the word index (curation/search.py) returns exactly what a scan
returns — substrings, several words, case, Chinese text, punctuation — on real data in a real
store, and rows added later (an edit) are found too."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from curation import search
from curation.browse import browse
from curation.edits import edit
from curation.importer import import_file

REPO = Path(__file__).resolve().parents[1]
REAL = Path(os.environ.get("STUDIO_REAL_DATA", REPO.parent / "shared" / "data" / "real"))

QUERIES = ["THE", "ater", "step by step", "tep by ste", "3 + 5", "$", "a, b", "几个", "中国",
           "zzzz-not-there", "e.g."]


def real(name: str) -> Path:
    path = REAL / name
    if not path.exists():
        pytest.skip(f"real data {path} is absent (shared/ beside the repo)")
    return path


def ids(store, ref, where, **kw):
    rows, total = browse(store, ref, where, page_size=10_000, **kw)
    assert total == len(rows)
    return [r["id"] for r in rows]


@pytest.mark.parametrize("field", ["text", "response"])
def test_index_answers_exactly_like_a_scan(store, monkeypatch, field):
    import_file(store, real("llamafactory_alpaca_en_demo.json"), "en")
    import_file(store, real("llamafactory_alpaca_zh_demo.json"), "zh")
    monkeypatch.setattr(search, "MIN_ROWS_FOR_INDEX", 10**9)  # scan
    expected = {(ds, q): ids(store, ds, f"{field}~\"{q}\"")
                for ds in ("en", "zh") for q in QUERIES if '"' not in q}
    assert not store.query("SELECT * FROM search_state")
    monkeypatch.setattr(search, "MIN_ROWS_FOR_INDEX", 1)  # index
    monkeypatch.setattr(search, "MAX_CANDIDATE_SHARE", float("inf"))  # even for common words
    used = []
    real_candidates = search.candidates

    def spy(*args, **kwargs):
        used.append(real_candidates(*args, **kwargs))
        return used[-1]

    monkeypatch.setattr(search, "candidates", spy)
    for (ds, q), want in expected.items():
        assert ids(store, ds, f"{field}~\"{q}\"") == want, (ds, q)
    assert sum(u is not None for u in used) >= len(expected) - 2  # '$' has no word: a scan
    assert {r["dataset"] for r in store.query("SELECT dataset FROM search_state")} == {"en", "zh"}
    assert expected[("en", "step by step")] and expected[("zh", "中国")]


def test_index_follows_rows_added_later_and_sorting(store, monkeypatch):
    monkeypatch.setattr(search, "MIN_ROWS_FOR_INDEX", 1)
    import_file(store, real("llamafactory_identity.json"), "ident")
    assert ids(store, "ident", "text~'quokka'") == []
    first = browse(store, "ident", page_size=1)[0][0]
    edit(store, "ident", first["id"], response="A quokka answered.", out="v2")
    assert ids(store, "ident@v2", "text~'Quokka'") == [first["id"]]
    # combined with other conditions, sorting and paging
    page, total = browse(store, "ident@v2", "text~'name' and resp_chars>=20", "-resp_chars",
                         page=2, page_size=5)
    monkeypatch.setattr(search, "MIN_ROWS_FOR_INDEX", 10**9)
    assert (page, total) == browse(store, "ident@v2", "text~'name' and resp_chars>=20",
                                   "-resp_chars", page=2, page_size=5)
    assert total > 5
