"""Seed groups: runs of one config that differ only by seed, found by group or run-name pattern.

Why: fine-tuning outcomes vary with the seed about as much as with many data changes, so a
comparison of two configs needs several runs of each (`studio train --seeds 0,1,2`). A group is
recorded in `run_groups` / `run_group_members` when launched; runs launched one by one can be
grouped after the fact by a glob over their names or ids (`curated-seed*`).
"""

from __future__ import annotations

import fnmatch
import json

from curation.errors import NotFoundError, StudioError


def parse_seeds(text: str | list[int]) -> list[int]:
    """'0,1,2' -> [0, 1, 2]; at least one seed, integers, no repeats."""
    items = text if isinstance(text, list) else [s.strip() for s in str(text).split(",") if s.strip()]
    try:
        seeds = [int(s) for s in items]
    except ValueError:
        raise StudioError(f"--seeds {text!r}: expected comma-separated integers, e.g. 0,1,2") from None
    if not seeds:
        raise StudioError("--seeds: give at least one seed, e.g. 0,1,2")
    dup = sorted({s for s in seeds if seeds.count(s) > 1})
    if dup:
        raise StudioError(f"--seeds {text!r}: seed {dup[0]} is repeated")
    return seeds


def record_group(con, group_id: str, name: str | None, config: dict) -> None:
    con.execute("INSERT INTO run_groups (id, name, config) VALUES (?, ?, ?)",
                [group_id, name, json.dumps(config, default=str)])


def add_member(con, group_id: str, run_id: str, seed: int) -> None:
    con.execute("INSERT INTO run_group_members (group_id, run_id, seed) VALUES (?, ?, ?)",
                [group_id, run_id, seed])


def list_groups(store) -> list[dict]:
    return store.query(
        "SELECT g.id, g.name, g.created_at, list(m.run_id ORDER BY m.seed) AS runs, "
        "list(m.seed ORDER BY m.seed) AS seeds FROM run_groups g "
        "LEFT JOIN run_group_members m ON m.group_id = g.id "
        "GROUP BY g.id, g.name, g.created_at ORDER BY g.created_at DESC")


def group_runs(store, ref: str) -> list[dict]:
    """The train runs of a group id, a group name, or a glob over run names/ids.

    Each run: {run_id, name, seed, state, checkpoint} where checkpoint is the run's last one
    (None while it has none). Raises NotFoundError when nothing matches.
    """
    from training.jobs import refresh

    refresh(store)
    members = store.query(
        "SELECT m.run_id, m.seed FROM run_group_members m JOIN run_groups g ON g.id = m.group_id "
        "WHERE g.id = ? OR g.name = ? ORDER BY m.seed", [ref, ref])
    runs = store.query("SELECT id, name, state, config FROM runs WHERE kind = 'train' "
                       "ORDER BY created_at, id")
    if members:
        by_id = {r["id"]: r for r in runs}
        chosen = [by_id[m["run_id"]] for m in members if m["run_id"] in by_id]
    else:
        chosen = [r for r in runs if fnmatch.fnmatchcase(r["name"] or "", ref)
                  or fnmatch.fnmatchcase(r["id"], ref)]
    if not chosen:
        raise NotFoundError(f"group {ref!r}: no run group of that id or name and no train run "
                            "whose name or id matches it (see `studio runs`)")
    last = {}
    for c in store.query("SELECT id, run_id, step FROM checkpoints WHERE run_id IN "
                         f"({', '.join('?' for _ in chosen)}) ORDER BY step",
                         [r["id"] for r in chosen]):
        last[c["run_id"]] = c["id"]
    out = []
    for r in chosen:
        cfg = json.loads(r["config"]) if isinstance(r["config"], str) else (r["config"] or {})
        out.append({"run_id": r["id"], "name": r["name"], "seed": cfg.get("seed"),
                    "state": r["state"], "checkpoint": last.get(r["id"])})
    return out
