"""Seed groups: runs of one config that differ only by seed, found by group or run-name pattern.

Why: fine-tuning outcomes vary with the seed about as much as with many data changes, so a
comparison of two configs needs several runs of each (`studio train --seeds 0,1,2`). A group is
recorded in `run_groups` / `run_group_members` when launched; runs launched one by one can be
grouped after the fact by a glob over their names or ids (`curated-seed*`).

Every multi-run experiment is a group of one of `GROUP_KINDS`: `seeds` (`train --seeds`),
`sweep` (`studio sweep`, evals.sweep) and `ablation` (`studio ablate`, evals.ablation; the
group id is the ablation id). A member's `params` say what varies between runs of the group
(e.g. {"lora_r": 8, "dataset": "support@v5"}) and `note` why it was stopped (a halving sweep's
run records that in its own folder, `training.halving`; `halved` is then true).
`run_groups_by_run(store)` is how a listing (the experiments table) reads a run's group.
"""

from __future__ import annotations

import fnmatch
import json

from kernel.errors import NotFoundError, StudioError


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


GROUP_KINDS = ("seeds", "sweep", "ablation")


def _json(value) -> str | None:
    return None if value is None else json.dumps(value, default=str)


def _loads(value):
    return json.loads(value) if isinstance(value, str) else value


def record_group(con, group_id: str, name: str | None, config: dict, kind: str = "seeds",
                 spec: dict | None = None) -> None:
    if kind not in GROUP_KINDS:
        raise ValueError(f"group kind {kind!r}: expected one of {GROUP_KINDS}")
    con.execute("INSERT INTO run_groups (id, name, config, kind, spec) VALUES (?, ?, ?, ?, ?)",
                [group_id, name, _json(config), kind, _json(spec)])


def add_member(con, group_id: str, run_id: str, seed: int, params: dict | None = None) -> None:
    con.execute("INSERT INTO run_group_members (group_id, run_id, seed, params) "
                "VALUES (?, ?, ?, ?)", [group_id, run_id, seed, _json(params)])


def set_member_note(store, group_id: str, run_id: str, note: str) -> None:
    """Why the group's driver stopped a run (e.g. successive halving), kept with the member."""
    with store.transaction() as con:
        con.execute("UPDATE run_group_members SET note = ? WHERE group_id = ? AND run_id = ?",
                    [note, group_id, run_id])


def list_groups(store, kind: str | None = None) -> list[dict]:
    """Groups newest first: id, name, kind, created_at, runs and seeds (in member order)."""
    rows = store.query(
        "SELECT g.id, g.name, g.kind, g.created_at, list(m.run_id ORDER BY m.seed) AS runs, "
        "list(m.seed ORDER BY m.seed) AS seeds FROM run_groups g "
        "LEFT JOIN run_group_members m ON m.group_id = g.id "
        "WHERE ? IS NULL OR g.kind = ? "
        "GROUP BY g.id, g.name, g.kind, g.created_at ORDER BY g.created_at DESC", [kind, kind])
    for r in rows:  # a group without members lists [None] from the LEFT JOIN
        r["runs"] = [x for x in r["runs"] if x is not None]
        r["seeds"] = [x for x in r["seeds"] if x is not None]
    return rows


def get_group(store, ref: str) -> dict:
    """A recorded group by id or name: its row (config, spec parsed) and its members in launch
    order (run_id, seed, params, note). Raises NotFoundError."""
    rows = store.query("SELECT * FROM run_groups WHERE id = ? OR name = ? "
                       "ORDER BY created_at DESC", [ref, ref])
    if not rows:
        raise NotFoundError(f"run group {ref!r} not found (the Experiments page and "
                            "`studio sweep list` list them)")
    group = rows[0]
    group["config"], group["spec"] = _loads(group["config"]), _loads(group["spec"])
    group["members"] = store.query(
        "SELECT m.run_id, m.seed, m.params, m.note, r.run_dir FROM run_group_members m "
        "LEFT JOIN runs r ON r.id = m.run_id WHERE m.group_id = ? "
        "ORDER BY r.created_at, m.run_id", [group["id"]])
    for m in group["members"]:
        m["params"] = _loads(m["params"]) or {}
        note = _halving_note(m.pop("run_dir"))
        m["halved"] = note is not None   # it stopped itself: no candidate for a sweep's winner
        m["note"] = m["note"] or note
    return group


def _halving_note(run_dir: str | None) -> str | None:
    """A run of a halving sweep stops itself and records why in its folder (workers never
    open the database): that record's note, or None."""
    from training.halving import stopped

    stop = stopped(run_dir) if run_dir else None
    return str(stop.get("note") or "stopped by successive halving") if stop else None


def run_groups_by_run(store) -> dict[str, list[dict]]:
    """run id -> the groups it belongs to: [{group_id, group, kind, params, note}], for
    listings such as the experiments table (a run may be in several, e.g. an ablation's run
    compared again as a seed group)."""
    out: dict[str, list[dict]] = {}
    for r in store.query(
            "SELECT m.run_id, g.id AS group_id, coalesce(g.name, g.id) AS \"group\", g.kind, "
            "m.params, m.note, r.run_dir FROM run_group_members m "
            "JOIN run_groups g ON g.id = m.group_id LEFT JOIN runs r ON r.id = m.run_id "
            "ORDER BY g.created_at"):
        r["params"] = _loads(r["params"]) or {}
        run_dir = r.pop("run_dir")
        if r["kind"] == "sweep" and not r["note"]:
            r["note"] = _halving_note(run_dir)
        out.setdefault(r.pop("run_id"), []).append(r)
    return out


def cancel_group(store, ref: str) -> list[dict]:
    """Cancel every run of a recorded group that has not finished (the rest of a sweep);
    returns [{run_id, state}] for the runs it cancelled. Finished runs keep their results."""
    from kernel.jobs import cancel, list_runs
    from kernel.status import TERMINAL

    group = get_group(store, ref)
    states = {r["id"]: r["state"] for r in list_runs(store)}
    cancelled = []
    for m in group["members"]:
        if states.get(m["run_id"]) in TERMINAL or m["run_id"] not in states:
            continue
        try:
            run = cancel(store, m["run_id"])
        except StudioError:  # finished between the listing and the cancel
            continue
        cancelled.append({"run_id": m["run_id"], "state": run["state"]})
    return cancelled


def group_runs(store, ref: str) -> list[dict]:
    """The train runs of a group id, a group name, or a glob over run names/ids.

    Each run: {run_id, name, seed, state, checkpoint} where checkpoint is the run's last one
    (None while it has none). Raises NotFoundError when nothing matches.
    """
    from kernel.jobs import refresh

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
