"""Manual curation: exclude rows or edit one, each as a new version (rows stay immutable).

An edit stores a new row (new uid, same id, new content hash) and the new version points to
it instead of the old one, so `diff` reports it as changed.
"""

from __future__ import annotations

import json

from curation import versions as V
from curation.datasets import resolve_ref
from kernel.errors import StudioError
from kernel.store import Store


def exclude(store: Store, ref: str, ids: list[str], out: str | None = None,
            operation: str = "exclude", params: dict | None = None) -> dict:
    """New version without the rows whose `id` is listed (unknown ids are an error).
    `operation`/`params` let a caller that chose the ids (e.g. denoise) record why."""
    if not ids:
        raise StudioError("exclude: no ids given")
    with store.transaction() as con:
        dataset, version = resolve_ref(con, ref)
        found = {r[0] for r in con.execute(
            "SELECT r.id FROM version_rows vr JOIN rows r ON r.uid = vr.uid WHERE vr.dataset = ? "
            "AND vr.version = ? AND list_contains(?, r.id)", [dataset, version, ids]).fetchall()}
        missing = [i for i in ids if i not in found]
        if missing:
            raise StudioError(f"exclude: no row with id {missing[0]!r} in {dataset}@{version}")
        sql = ("SELECT vr.uid, vr.split, vr.dup_cluster, vr.is_dup FROM version_rows vr "
               "JOIN rows r ON r.uid = vr.uid WHERE vr.dataset = ? AND vr.version = ? "
               "AND NOT list_contains(?, r.id)")
        name = V.create_version(con, dataset, version, operation, {**(params or {}), "ids": ids}, sql,
                                [dataset, version, ids], out)
    return {"ref": f"{dataset}@{name}", "parent": f"{dataset}@{version}", "n_excluded": len(ids)}


def edit(store: Store, ref: str, row_id: str, instruction: str | None = None,
         response: str | None = None, out: str | None = None) -> dict:
    """New version where row `row_id` has a new first-user and/or last-assistant text."""
    if instruction is None and response is None:
        raise StudioError("edit: give a new instruction and/or response")
    with store.transaction() as con:
        dataset, version = resolve_ref(con, ref)
        got = con.execute(
            "SELECT r.uid, r.messages, r.source_file, r.source_line, r.tags, r.category "
            "FROM version_rows vr JOIN rows r ON r.uid = vr.uid WHERE vr.dataset = ? "
            "AND vr.version = ? AND r.id = ?", [dataset, version, row_id]).fetchall()
        if not got:
            raise StudioError(f"edit: no row with id {row_id!r} in {dataset}@{version}")
        old_uid, messages, src, line, tags, category = got[0]
        msgs = json.loads(messages)
        users = [k for k, m in enumerate(msgs) if m["role"] == "user"]
        bots = [k for k, m in enumerate(msgs) if m["role"] == "assistant"]
        if instruction is not None:
            msgs[users[0]]["content"] = instruction
        if response is not None:
            if not bots:
                msgs.append({"role": "assistant", "content": ""})
                bots = [len(msgs) - 1]
            msgs[bots[-1]]["content"] = response
        con.execute("""
            INSERT INTO row_data (uid, dataset, id, messages, system, instruction, response, n_turns,
                              source_file, source_line, content_hash, tags, category, rid,
                              inst_chars, resp_chars)
            SELECT md5(? || chr(31) || ? || chr(31) || h), ?, ?, m,
                   list_filter(from_json(m, '[{"role":"VARCHAR","content":"VARCHAR"}]'),
                               lambda x: x.role = 'system')[1].content,
                   ?, ?, ?, ?, ?, h, ?, ?, (SELECT coalesce(max(rid), 0) + 1 FROM rows),
                   length(?), length(?)
            FROM (SELECT CAST(? AS JSON) AS m, md5(CAST(CAST(? AS JSON) AS VARCHAR)) AS h)
            WHERE NOT EXISTS (SELECT 1 FROM rows WHERE uid = md5(? || chr(31) || ? || chr(31) || h))
        """, [dataset, row_id, dataset, row_id, msgs[users[0]]["content"],
              msgs[bots[-1]]["content"] if bots else None,
              sum(m["role"] != "system" for m in msgs), src, line, tags, category,
              msgs[users[0]]["content"], msgs[bots[-1]]["content"] if bots else None,
              json.dumps(msgs, separators=(",", ":"), ensure_ascii=False),
              json.dumps(msgs, separators=(",", ":"), ensure_ascii=False), dataset, row_id])
        new_uid = con.execute("SELECT md5(? || chr(31) || ? || chr(31) || md5(CAST(CAST(? AS JSON) "
                              "AS VARCHAR)))", [dataset, row_id, json.dumps(
                                  msgs, separators=(",", ":"), ensure_ascii=False)]).fetchone()[0]
        sql = ("SELECT CASE WHEN uid = ? THEN ? ELSE uid END AS uid, split, dup_cluster, is_dup "
               "FROM version_rows WHERE dataset = ? AND version = ?")
        name = V.create_version(con, dataset, version, "edit",
                                {"id": row_id, "instruction": instruction, "response": response},
                                sql, [old_uid, new_uid, dataset, version], out)
    return {"ref": f"{dataset}@{name}", "parent": f"{dataset}@{version}", "id": row_id,
            "uid": new_uid}
