"""Migration 0086: `rows` is a view over `row_data`, which stores `messages` only for rows that
are more than a plain single turn; the view derives the rest byte for byte (the text the
content hash was computed on). An existing workspace keeps every row through it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from curation.datasets import load_rows
from curation.dedup import dedup
from curation.edits import edit
from curation.export import export
from curation.importer import import_file
from kernel import migrations
from kernel import store as store_mod
from kernel.store import Store

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[1]
REAL = Path(os.environ.get("STUDIO_REAL_DATA", REPO.parent / "shared" / "data" / "real"))

PLAIN = '[{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}]'
TWO_TURNS = ('[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, '
             '{"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]')


def _stored_and_derived(store: Store, dataset: str) -> list[tuple]:
    return [tuple(r.values()) for r in store.query(
        "SELECT d.messages IS NOT NULL AS stored, v.messages, md5(CAST(v.messages AS VARCHAR)) "
        "= v.content_hash AS hash_ok, v.n_turns FROM row_data d JOIN rows v USING (uid) "
        "WHERE d.dataset = ? ORDER BY v.source_line", [dataset])]


def test_old_workspace_keeps_its_rows_and_new_imports_store_plain_rows_narrow(tmp_path,
                                                                            monkeypatch):
    full = list(migrations.MIGRATIONS)
    monkeypatch.setattr(store_mod, "MIGRATIONS", [m for m in full
                                                   if not m[0].startswith(("0086", "0090"))])
    with Store(tmp_path / "ws").connect() as con:  # a workspace of before 0086 (and 0090)
        for uid, line, messages in (("u1", 1, PLAIN), ("u2", 2, TWO_TURNS)):
            con.execute("INSERT INTO rows (uid, dataset, id, messages, instruction, response, "
                        "n_turns, source_line, content_hash, rid) VALUES (?, 'old', ?, ?, "
                        "json_extract_string(?, '$[0].content'), "
                        "json_extract_string(?, '$[-1].content'), 2, ?, md5(?), ?)",
                        [uid, f"r{line}", messages, messages, messages, line, messages, line])
        con.execute("INSERT INTO datasets (name) VALUES ('old')")
        con.execute("INSERT INTO versions (dataset, version, operation, n_rows) "
                    "VALUES ('old', 'v1', 'import', 2)")
        con.execute("INSERT INTO version_rows (dataset, version, uid, rid) VALUES "
                    "('old', 'v1', 'u1', 1), ('old', 'v1', 'u2', 2)")
    monkeypatch.setattr(store_mod, "MIGRATIONS", full)
    store_mod._migrated.clear()
    store = Store(tmp_path / "ws")
    assert "0086_curation_rows_view_derived_messages" in store.applied_migrations()
    # the old rows come back exactly as they were stored
    assert [json.dumps(r["messages"], separators=(",", ":")) for r in load_rows(store, "old")] \
        == [PLAIN, json.dumps(json.loads(TWO_TURNS), separators=(",", ":"))]
    assert [s for s, *_ in _stored_and_derived(store, "old")] == [True, True]

    import_file(store, DATA / "alpaca.jsonl", "flat")
    import_file(store, DATA / "chat.jsonl", "chat")
    flat, chat = _stored_and_derived(store, "flat"), _stored_and_derived(store, "chat")
    assert [s for s, *_ in flat] == [False] * len(flat)  # derived by the view
    assert [s for s, *_ in chat] == [True, False]  # a two-turn conversation / a plain one
    assert all(ok for _, _, ok, _ in flat + chat)  # derived bytes = the hashed bytes
    assert json.loads(chat[1][1]) == [{"role": "user", "content": "Capital of Italy?"},
                                      {"role": "assistant", "content": "Rome."}]
    # an edit writes the table behind the view; a failed import's sweep deletes from it
    first = load_rows(store, "flat")[0]
    edited = edit(store, "flat", first["id"], response="changed")
    assert load_rows(store, edited["ref"])[0]["messages"][-1]["content"] == "changed"
    assert store.query("SELECT count(DISTINCT uid) AS n FROM rows")[0]["n"] == \
        store.query("SELECT count(*) AS n FROM row_data")[0]["n"]


def test_real_files_round_trip_through_the_view(tmp_path):
    files = ["llamafactory_alpaca_en_demo.json", "llamafactory_glaive_toolcall_en_demo.json",
             "llamafactory_alpaca_zh_demo.json"]
    if not all((REAL / f).exists() for f in files):
        pytest.skip(f"real data in {REAL} is absent (shared/ beside the repo)")
    store = Store(tmp_path / "ws")
    for k, name in enumerate(files):
        got = import_file(store, REAL / name, f"d{k}")
        rows = _stored_and_derived(store, f"d{k}")
        assert len(rows) == got["n_rows"] > 0
        assert all(ok for _, _, ok, _ in rows), name  # view text hashes to content_hash
        # stored exactly where the conversation is more than one plain turn
        plain = [not s for s, *_ in rows]
        if got["format"] in ("alpaca", "prompt_completion", "qa"):
            assert all(plain)
        for stored, messages, _, _ in rows:
            msgs = json.loads(messages)
            is_plain = ([m["role"] for m in msgs] in (["user", "assistant"],
                                                      ["system", "user", "assistant"])
                        and all(set(m) == {"role", "content"} for m in msgs))
            assert stored != is_plain, (name, messages)
    # exact dedup and export read the derived messages like stored ones
    assert dedup(store, "d0", "exact")["ref"].startswith("d0@")
    export(store, "d1", tmp_path / "tools.jsonl", format="jsonl")
    lines = (tmp_path / "tools.jsonl").read_text().splitlines()
    assert len(lines) == len(load_rows(store, "d1")) and any("tool_calls" in x for x in lines)
