"""The import's schema changes (0025 search index tables, 0026 rows without the uid index)
apply to a workspace made before them and keep every row."""

from __future__ import annotations

from pathlib import Path

from curation.datasets import load_rows
from curation.importer import import_file
from kernel import migrations
from kernel import store as store_mod
from kernel.store import Store

DATA = Path(__file__).parent / "data"


def test_existing_workspace_keeps_its_rows_through_the_new_migrations(tmp_path, monkeypatch):
    full = list(migrations.MIGRATIONS)
    old = [m for m in full if not m[0].startswith(("0025", "0026", "0086", "0090"))]
    monkeypatch.setattr(store_mod, "MIGRATIONS", old)
    before_store = Store(tmp_path / "ws")
    with before_store.connect() as con:  # an old workspace: rows written before 0025/0026
        con.execute("INSERT INTO rows (uid, dataset, id, messages, content_hash, rid) VALUES "
                    "('u1', 'old', 'r1', '[{\"role\": \"user\", \"content\": \"hi\"}, "
                    "{\"role\": \"assistant\", \"content\": \"yo\"}]', 'h1', 1)")
        con.execute("INSERT INTO datasets (name) VALUES ('old')")
        con.execute("INSERT INTO versions (dataset, version, operation, n_rows) "
                    "VALUES ('old', 'v1', 'import', 1)")
        con.execute("INSERT INTO version_rows (dataset, version, uid, rid) VALUES "
                    "('old', 'v1', 'u1', 1)")
    monkeypatch.setattr(store_mod, "MIGRATIONS", full)
    store_mod._migrated.clear()
    store = Store(tmp_path / "ws")
    assert {"0025_curation_text_search_index", "0026_curation_rows_without_uid_index"} <= \
        set(store.applied_migrations())
    assert [r["id"] for r in load_rows(store, "old")] == ["r1"]
    assert not store.query("SELECT * FROM duckdb_constraints() WHERE table_name = 'rows' "
                           "AND constraint_type = 'PRIMARY KEY'")
    import_file(store, DATA / "alpaca.jsonl", "new")
    assert len(load_rows(store, "new")) == 3
    assert store.query("SELECT count(DISTINCT uid) AS n FROM rows")[0]["n"] == 4
    # 0090: the hash columns are stored uncompressed, their NOT NULLs and the rows kept
    got = store.query("SELECT column_name, list(DISTINCT compression) AS c FROM "
                      "pragma_storage_info('row_data') WHERE column_name IN ('uid', 'id', "
                      "'content_hash') AND segment_type = 'VARCHAR' GROUP BY 1")
    assert {r["column_name"]: r["c"] for r in got} == {
        c: ["Uncompressed"] for c in ("uid", "id", "content_hash")}
    not_null = {r["column_name"] for r in store.query(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = 'row_data' "
        "AND NOT is_nullable")}
    assert {"uid", "dataset", "id", "content_hash"} <= not_null
    sql = store.query("SELECT sql FROM duckdb_tables() WHERE table_name = 'version_rows'")
    assert "uid VARCHAR USING COMPRESSION Uncompressed NOT NULL" in sql[0]["sql"]
    assert store.query("SELECT uid, rid FROM version_rows WHERE dataset = 'old'") == \
        [{"uid": "u1", "rid": 1}]
