"""Versions: seeded/stratified splits, export + re-import round trip, diff, manual edits."""

from __future__ import annotations

import json

import pytest

from curation.datasets import diff, list_versions, load_rows, show
from curation.edits import edit, exclude
from curation.export import export
from curation.importer import import_file
from curation.split import split
from kernel.errors import StudioError


@pytest.fixture
def ds(store, tmp_path):
    rows = [{"id": f"r{i:03d}", "instruction": f"task {i}", "output": f"answer {i}",
             "category": ["a", "b", "c", "d"][i % 4], "system": "sys" if i % 7 == 0 else None,
             "tags": ["x"] if i % 5 == 0 else None}
            for i in range(200)]
    f = tmp_path / "d.jsonl"
    f.write_text("\n".join(json.dumps({k: v for k, v in r.items() if v is not None})
                           for r in rows) + "\n")
    import_file(store, f, "d")
    return store


def test_split_is_seeded_and_stratified(ds):
    a = split(ds, "d@v1", 0.2, seed=7, out="s7")
    b = split(ds, "d@v1", 0.2, seed=7, out="s7b")
    c = split(ds, "d@v1", 0.2, seed=8, out="s8")
    assert (a["n_train"], a["n_heldout"]) == (160, 40)
    held = {r["id"] for r in load_rows(ds, a["ref"], split="heldout")}
    assert held == {r["id"] for r in load_rows(ds, b["ref"], split="heldout")}
    assert held != {r["id"] for r in load_rows(ds, c["ref"], split="heldout")}
    strat = split(ds, "d@v1", 0.2, seed=1, stratify="category", out="strat")
    cats = [r["category"] for r in load_rows(ds, strat["ref"], split="heldout")]
    assert {k: cats.count(k) for k in "abcd"} == {"a": 10, "b": 10, "c": 10, "d": 10}
    assert not held & {r["id"] for r in load_rows(ds, a["ref"], split="train")}
    with pytest.raises(StudioError, match="fraction between 0 and 1"):
        split(ds, "d", 1.5)
    with pytest.raises(StudioError, match="cannot stratify"):
        split(ds, "d", 0.1, stratify="response")


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "hf"])
def test_export_round_trips(ds, tmp_path, fmt):
    split(ds, "d", 0.1, seed=0)
    out = tmp_path / f"export.{fmt}"
    got = export(ds, "d", out, fmt)
    assert got["n_rows"] == 200
    import_file(ds, out, "back")
    orig = ds.query("SELECT id, content_hash, system, tags, category FROM rows WHERE dataset = 'd' "
                    "ORDER BY id")
    back = ds.query("SELECT id, content_hash, system, tags, category FROM rows "
                    "WHERE dataset = 'back' ORDER BY id")
    assert back == orig
    with pytest.raises(StudioError, match="unknown format"):
        export(ds, "d", tmp_path / "x.csv", "csv")


def test_export_heldout_only_jsonl_has_canonical_fields(ds, tmp_path):
    split(ds, "d", 0.25, seed=3)
    export(ds, "d", tmp_path / "held.jsonl", "jsonl", split="heldout")
    lines = [json.loads(x) for x in (tmp_path / "held.jsonl").read_text().splitlines()]
    assert len(lines) == 50 and all(x["split"] == "heldout" for x in lines)
    assert {"id", "messages", "instruction", "response", "system", "category", "tags"} <= set(lines[0])


def test_diff_edit_exclude_lineage(ds):
    edited = edit(ds, "d", "r001", response="a better answer", out="fixed")
    excl = exclude(ds, "d@fixed", ["r002", "r003"], out="trimmed")
    got = diff(ds, "d@v1", excl["ref"])
    assert (got["removed"], got["added"], got["changed"]) == (2, 0, 1)
    assert got["changed_ids"] == ["r001"] and got["removed_ids"] == ["r002", "r003"]
    rows = {r["id"]: r for r in load_rows(ds, "d@trimmed")}
    assert rows["r001"]["response"] == "a better answer"
    assert {r["id"]: r for r in load_rows(ds, "d@v1")}["r001"]["response"] == "answer 1"
    assert edited["uid"] != ds.query("SELECT uid FROM rows WHERE id = 'r001' AND "
                                     "response = 'answer 1'")[0]["uid"]
    assert [v["operation"] for v in list_versions(ds, "d")] == ["import", "edit", "exclude"]
    info = show(ds, "d")
    assert info["version"] == "trimmed" and info["lineage"] == ["trimmed", "fixed", "v1"]
    with pytest.raises(StudioError, match="no row with id 'zzz'"):
        exclude(ds, "d", ["zzz"])


def test_int_key_migration_backfills_existing_rows(ds):
    """A workspace created before 0006 gets rids and lengths for its rows and versions."""
    import kernel.store as store_mod
    from curation.browse import browse
    from kernel.store import Store

    split(ds, "d", 0.1, seed=0)
    with ds.transaction() as con:
        con.execute("DROP VIEW rows")  # back to the table `rows` of before 0086, then 0006
        con.execute("ALTER TABLE row_data RENAME TO rows")
        con.execute("DELETE FROM _migrations WHERE name = '0086_curation_rows_view_derived_messages'")
        con.execute("ALTER TABLE version_rows DROP COLUMN rid")
        for col in ("rid", "inst_chars", "resp_chars"):
            con.execute(f"ALTER TABLE rows DROP COLUMN {col}")
        con.execute("DELETE FROM _migrations WHERE name = '0006_curation_int_keys_lengths'")
    store_mod._migrated.discard(ds.path)
    again = Store(ds.workspace)
    assert again.query("SELECT count(*) AS n FROM rows WHERE rid IS NULL OR resp_chars IS NULL"
                       )[0]["n"] == 0
    assert again.query("SELECT count(*) AS n FROM version_rows WHERE rid IS NULL")[0]["n"] == 0
    rows, total = browse(again, "d", "resp_chars>=10", sort="-resp_chars", page_size=5)
    assert total == 100 and rows[0]["resp_chars"] == 10  # "answer 100".."answer 199"
