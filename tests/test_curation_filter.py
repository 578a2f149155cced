"""Filters: parsed into Conditions, compiled to parameterized SQL; browse pages; filter versions."""

from __future__ import annotations

import json

import pytest

from curation.browse import browse, count, filter_version
from curation.datasets import list_versions, load_rows
from curation.filters import Condition, parse_where
from curation.importer import import_file
from curation.scoring import score
from kernel.errors import StudioError


@pytest.fixture
def ds(store, tmp_path):
    rows = [{"id": f"r{i:02d}", "instruction": f"Question number {i}",
             "output": "hello world " * (i % 5) + ("It's done." if i % 2 else "ok"),
             "category": "odd" if i % 2 else "even", "tags": ["t3"] if i % 3 == 0 else []}
            for i in range(30)]
    f = tmp_path / "d.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    import_file(store, f, "d")
    return store


def test_parse_where_values_and_errors():
    conds = parse_where("resp_chars>=10 and text~'hello and bye' AND is_dup=false and x=null "
                        "and ppl<3.5 and category!=\"a b\"")
    assert conds == [Condition("resp_chars", ">=", 10), Condition("text", "~", "hello and bye"),
                     Condition("is_dup", "=", False), Condition("x", "=", None),
                     Condition("ppl", "<", 3.5), Condition("category", "!=", "a b")]
    with pytest.raises(StudioError, match="cannot parse"):
        parse_where("resp_chars >>= 3")
    with pytest.raises(StudioError, match="unknown operator"):
        Condition("a", "LIKE", 1)
    with pytest.raises(StudioError, match="invalid field name"):
        Condition("a;drop", "=", 1)


def test_browse_pages_sort_and_total(ds):
    rows, total = browse(ds, "d", "category='odd'", sort="-resp_chars", page=1, page_size=4)
    assert total == 15 and len(rows) == 4
    lengths = [r["resp_chars"] for r in rows]
    assert lengths == sorted(lengths, reverse=True)
    page4, _ = browse(ds, "d", "category='odd'", sort="-resp_chars", page=4, page_size=4)
    assert len(page4) == 3  # 15 = 4 + 4 + 4 + 3
    first, total_all = browse(ds, "d", None, page=1, page_size=3)
    assert total_all == 30 and [r["id"] for r in first] == ["r00", "r01", "r02"]
    assert first[0]["messages"][0]["role"] == "user"
    empty, total_empty = browse(ds, "d", "text~'no such text'")
    assert (empty, total_empty) == ([], 0)


def test_text_tags_and_values_are_parameters(ds):
    assert count(ds, "d", "text~'NUMBER 1'") == 11  # 1, 10..19; case-insensitive
    assert count(ds, "d", "tags~'t3'") == 10
    # a value full of SQL is just a string that matches nothing
    assert count(ds, "d", [Condition("id", "=", "x' OR '1'='1")]) == 0
    assert count(ds, "d", [Condition("response", "~", "It's")]) == 15
    with pytest.raises(StudioError, match="is a number"):
        count(ds, "d", "resp_chars>='abc'")
    with pytest.raises(StudioError, match="unknown field 'ppl'"):
        count(ds, "d", "ppl<3")


def test_filter_on_scores_creates_version_with_lineage(ds):
    scored = score(ds, "d", "heuristic")
    assert scored["ref"] == "d@v2"
    got = filter_version(ds, "d", "resp_tokens>=4 and lang='en'", out="clean")
    assert got["ref"] == "d@clean" and got["n_rows"] + got["n_removed"] == 30
    kept = load_rows(ds, "d@clean")
    assert kept and all(len(r["response"]) > 2 for r in kept)
    versions = list_versions(ds, "d")
    assert [(v["version"], v["parent"], v["operation"]) for v in versions] == \
        [("v1", None, "import"), ("v2", "v1", "score"), ("clean", "v2", "filter")]
    assert versions[-1]["params"]["where"][0] == {"field": "resp_tokens", "op": ">=", "value": 4}
    # scores of the parent are visible (and sortable) on the child
    rows, _ = browse(ds, "d@clean", None, sort="-resp_tokens", page_size=2)
    assert rows[0]["scores"]["resp_tokens"] >= rows[1]["scores"]["resp_tokens"]


def test_filter_errors_leave_versions_unchanged(ds):
    with pytest.raises(StudioError, match="at least one condition"):
        filter_version(ds, "d", "")
    filter_version(ds, "d", "resp_chars>3", out="x")
    with pytest.raises(StudioError, match="already exists"):
        filter_version(ds, "d@v1", "resp_chars>3", out="x")
    assert [v["version"] for v in list_versions(ds, "d")] == ["v1", "x"]
