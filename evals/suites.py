"""Eval suites: a frozen snapshot of held-out rows + the metrics and sampling to evaluate them.

Roles: 'task' suites measure what a run should improve; 'general' suites measure what it must
not forget (compared against the base model). Rows are copied into `eval_suite_rows` on
creation so a suite's results stay comparable while its source dataset gets new versions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from evals.metrics import validate_specs
from evals.prompts import prompt_messages, reference
from evals.types import SamplingConfig
from kernel.errors import NotFoundError, StudioError
from kernel.store import Store

ROLES = ("task", "general")


@dataclass
class Suite:
    name: str
    role: str = "task"
    metrics: list[str] = field(default_factory=lambda: ["exact_match"])
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    source: str | None = None
    group_by: str | None = None       # row field whose value clusters rows for the statistics
    rows: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise StudioError(f"suite: field 'name' must be non-empty without '/', got {self.name!r}")
        if self.role not in ROLES:
            raise StudioError(f"suite {self.name}: field 'role' must be one of {ROLES}, got {self.role!r}")
        self.metrics = validate_specs(list(self.metrics))
        if isinstance(self.sampling, dict):
            self.sampling = SamplingConfig.from_dict(self.sampling)


def _check_rows(rows: list[dict], where: str) -> list[dict]:
    seen: set[str] = set()
    out = []
    for i, row in enumerate(rows):
        rid = str(row.get("id") if row.get("id") is not None else i)
        if rid in seen:
            raise StudioError(f"{where}: row {i + 1}: field 'id' {rid!r} is duplicated")
        seen.add(rid)
        try:
            prompt_messages(row)
        except StudioError as exc:
            raise StudioError(f"{where}: row {i + 1}: {exc}") from exc
        out.append({**row, "id": rid})
    if not out:
        raise StudioError(f"{where}: no rows")
    return out


def read_rows_file(path: str | Path) -> list[dict]:
    """Rows from a JSONL file (one object per line: messages, or instruction + response)."""
    path = Path(path)
    if not path.exists():
        raise StudioError(f"{path}: file not found")
    rows = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise StudioError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from exc
        if not isinstance(obj, dict):
            raise StudioError(f"{path}:{lineno}: expected a JSON object")
        if not obj.get("messages") and not obj.get("instruction"):
            raise StudioError(f"{path}:{lineno}: field 'messages' or 'instruction' is required")
        obj.setdefault("id", f"{path.stem}-{lineno}")
        rows.append(obj)
    return rows


def save_suite(store: Store, suite: Suite, replace: bool = False) -> Suite:
    """Validate and store the suite with its rows in one transaction."""
    rows = _check_rows(suite.rows, f"suite {suite.name}")
    records = []
    for idx, r in enumerate(rows):
        msgs = r.get("messages") or prompt_messages(r) + (
            [{"role": "assistant", "content": r["response"]}] if r.get("response") else [])
        grp = r.get(suite.group_by) if suite.group_by else None
        if suite.group_by and grp is None:
            raise StudioError(f"suite {suite.name}: row {idx + 1}: field {suite.group_by!r} "
                              "(group_by) is missing")
        records.append([suite.name, idx, r["id"], json.dumps(msgs), reference(r),
                        r.get("category"), list(r.get("tags") or []) or None,
                        None if grp is None else str(grp)])
    with store.transaction() as con:
        exists = con.execute("SELECT 1 FROM eval_suites WHERE name = ?", [suite.name]).fetchone()
        if exists and not replace:
            raise StudioError(f"suite {suite.name!r} already exists (use replace)")
        con.execute("DELETE FROM eval_suite_rows WHERE suite = ?", [suite.name])
        con.execute("DELETE FROM eval_suites WHERE name = ?", [suite.name])
        con.execute(
            "INSERT INTO eval_suites (name, role, source, metrics, sampling, group_by, n_rows) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [suite.name, suite.role, suite.source, json.dumps(suite.metrics),
             suite.sampling.canonical(), suite.group_by, len(records)])
        con.executemany("INSERT INTO eval_suite_rows VALUES (?, ?, ?, ?, ?, ?, ?, ?)", records)
    suite.rows = rows
    return suite


def suite_from_dataset(store: Store, name: str, ref: str, replace: bool = False,
                       **options) -> Suite:
    """A suite over a dataset version's held-out split (curation.datasets.load_rows)."""
    from curation.datasets import load_rows

    rows = load_rows(store, ref, split="heldout")
    if not rows:
        raise StudioError(f"dataset {ref}: the held-out split is empty; split the dataset first")
    return save_suite(store, Suite(name=name, source=ref, rows=rows, **options), replace=replace)


def suite_from_file(store: Store, name: str, path: str | Path, replace: bool = False,
                    **options) -> Suite:
    return save_suite(store, Suite(name=name, source=str(path), rows=read_rows_file(path),
                                   **options), replace=replace)


def list_suites(store: Store) -> list[dict]:
    rows = store.query("SELECT name, role, source, metrics, sampling, group_by, n_rows, created_at "
                       "FROM eval_suites ORDER BY name")
    for r in rows:
        r["metrics"] = json.loads(r["metrics"])
        r["sampling"] = json.loads(r["sampling"])
    return rows


def load_suite(store: Store, name: str) -> Suite:
    with store.connect() as con:
        head = con.execute("SELECT role, source, metrics, sampling, group_by FROM eval_suites "
                           "WHERE name = ?", [name]).fetchone()
        if head is None:
            raise NotFoundError(f"suite {name!r} not found (see `studio suites`)")
        body = con.execute("SELECT row_id, messages, reference, category, tags, grp "
                           "FROM eval_suite_rows WHERE suite = ? ORDER BY idx", [name]).fetchall()
    rows = [{"id": rid, "messages": json.loads(m), "response": ref, "category": cat,
             "tags": tags or [], "group": grp}
            for rid, m, ref, cat, tags, grp in body]
    return Suite(name=name, role=head[0], source=head[1], metrics=json.loads(head[2]),
                 sampling=SamplingConfig.from_dict(json.loads(head[3])), group_by=head[4],
                 rows=rows)
