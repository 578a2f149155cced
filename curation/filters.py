"""Structured filter conditions compiled to parameterized SQL (user values never become SQL).

A condition is `Condition(field, op, value)`; a CLI/UI string such as
`resp_chars>=10 and text~'hello' and is_dup=false` parses into a list of them (joined by AND).
Fields are row columns (below) or score names (joined from the `scores` table, looked up along
the version's lineage so scores computed on an ancestor still apply).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from kernel.errors import StudioError

# field -> (SQL expression over `r` rows / `vr` version_rows, kind)
FIELDS: dict[str, tuple[str, str]] = {
    "id": ("r.id", "text"),
    "uid": ("r.uid", "text"),
    "instruction": ("r.instruction", "text"),
    "response": ("r.response", "text"),
    "system": ("r.system", "text"),
    "text": ("concat_ws(chr(10), r.system, r.instruction, r.response)", "text"),
    "category": ("r.category", "text"),
    "source": ("r.source_file", "text"),
    "source_line": ("r.source_line", "num"),
    "content_hash": ("r.content_hash", "text"),
    "n_turns": ("r.n_turns", "num"),
    "inst_chars": ("r.inst_chars", "num"),
    "resp_chars": ("r.resp_chars", "num"),
    "tags": ("r.tags", "list"),
    "split": ("vr.split", "text"),
    "is_dup": ("vr.is_dup", "bool"),
    "dup_cluster": ("vr.dup_cluster", "text"),
}
TEXT_COLUMNS = ("r.instruction", "r.response", "r.system")
VERSION_FIELDS = {"split", "is_dup", "dup_cluster"}
OPS = ("=", "!=", "<", "<=", ">", ">=", "~", "!~")
_NUM_OPS = {"=", "!=", "<", "<=", ">", ">="}


@dataclass(frozen=True)
class Condition:
    """One test on a field. `~` means "contains" (case-insensitive; for tags: has the tag)."""

    field: str
    op: str
    value: Any

    def __post_init__(self):
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_:.-]*", self.field or ""):
            raise StudioError(f"filter: invalid field name {self.field!r}")
        if self.op not in OPS:
            raise StudioError(f"filter: unknown operator {self.op!r} in {self.field}{self.op}; "
                              f"use one of {' '.join(OPS)}")


_TOKEN = re.compile(r"""\s*(?:
    (?P<field>[A-Za-z_][A-Za-z0-9_:.-]*)\s*(?P<op>!=|<=|>=|!~|=|<|>|~)\s*
    (?P<value>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*"|[^\s'"]+)
)\s*""", re.X)


def _parse_value(raw: str) -> Any:
    if raw[0] in "'\"":  # backslash escapes, and SQL-style doubling: 'it''s'
        doubled = raw[0] * 2
        return re.sub(r"\\(.)|" + doubled, lambda m: m[1] if m[1] is not None else raw[0],
                      raw[1:-1])
    low = raw.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "null":
        return None
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        return float(raw)
    except ValueError:
        return raw


def parse_where(text: str | None) -> list[Condition]:
    """`a>=1 and b~'x y'` -> [Condition('a','>=',1), Condition('b','~','x y')]."""
    if not text or not text.strip():
        return []
    parts = re.split(r"\s+and\s+(?=(?:[^'\"]|'[^']*'|\"[^\"]*\")*$)", text.strip(), flags=re.I)
    out = []
    for part in parts:
        m = _TOKEN.fullmatch(part)
        if not m:
            raise StudioError(f"filter: cannot parse {part!r}; expected FIELD OP VALUE joined by "
                              f"'and', e.g. resp_chars>=10 and text~'hello' (ops: {' '.join(OPS)})")
        out.append(Condition(m["field"], m["op"], _parse_value(m["value"])))
    return out


@dataclass
class Compiled:
    joins: str
    join_params: list
    where: str
    where_params: list
    score_fields: list[str]


def score_join(alias: str) -> str:
    """LEFT JOIN of one score from the version that computed it (params: dataset, version,
    name)."""
    return (f" LEFT JOIN (SELECT rid, value, label FROM scores WHERE dataset = ? AND version = ? "
            f"AND name = ?) {alias} ON {alias}.rid = vr.rid")


def compile_conditions(conditions: list[Condition], dataset: str, known_scores: dict[str, str],
                       extra_scores: tuple[str, ...] = ()) -> Compiled:
    """Conditions -> JOIN clause for score fields + WHERE clause, both with ? parameters.

    `known_scores` maps each score name to the version whose values apply (lineage)."""
    joins, jparams, where, wparams = "", [], [], []
    aliases: dict[str, str] = {}

    def score_alias(name: str) -> str:
        nonlocal joins
        if name not in aliases:
            if name not in known_scores:
                raise StudioError(f"filter: unknown field {name!r}: not a row field "
                                  f"({', '.join(sorted(FIELDS))}) nor a score of this version "
                                  f"({', '.join(sorted(known_scores)) or 'none yet'})")
            aliases[name] = f"s{len(aliases)}"
            joins += score_join(aliases[name])
            jparams.extend([dataset, known_scores[name], name])
        return aliases[name]

    for name in extra_scores:
        score_alias(name)
    for c in conditions:
        if c.field in FIELDS:
            expr, kind = FIELDS[c.field]
        else:
            a = score_alias(c.field)
            kind = "text" if isinstance(c.value, str) else "num"
            expr = f"{a}.label" if kind == "text" else f"{a}.value"
        sql, params = _one(expr, kind, c)
        where.append(sql)
        wparams.extend(params)
    return Compiled(joins, jparams, " AND ".join(where) or "TRUE", wparams, list(aliases))


def _one(expr: str, kind: str, c: Condition) -> tuple[str, list]:
    if c.value is None:
        if c.op not in ("=", "!="):
            raise StudioError(f"filter: {c.field}{c.op}null: only = and != work with null")
        return f"{expr} IS {'NOT ' if c.op == '!=' else ''}NULL", []
    if c.op in ("~", "!~"):
        neg = "NOT " if c.op == "!~" else ""
        if kind == "list":
            return f"{neg}coalesce(list_contains({expr}, ?), false)", [str(c.value)]
        pattern = "%" + re.sub(r"([%_\\])", r"\\\1", str(c.value)) + "%"
        # ILIKE per column (no concatenated copy of every row's text)
        columns = TEXT_COLUMNS if c.field == "text" else (expr,)
        test = " OR ".join(f"coalesce({col} ILIKE ? ESCAPE '\\', false)" for col in columns)
        return f"{neg}({test})", [pattern] * len(columns)
    if kind == "list":
        raise StudioError(f"filter: {c.field} is a list of tags; use {c.field}~'TAG'")
    if kind == "bool":
        if not isinstance(c.value, bool) or c.op not in ("=", "!="):
            raise StudioError(f"filter: {c.field} is true/false; use {c.field}=true or =false")
        return f"coalesce({expr}, false) {c.op.replace('!=', '<>')} ?", [c.value]
    if kind == "num" and (isinstance(c.value, bool) or not isinstance(c.value, (int, float))):
        raise StudioError(f"filter: {c.field} is a number; got {c.value!r}")
    if c.op not in _NUM_OPS:
        raise StudioError(f"filter: operator {c.op} does not apply to {c.field}")
    return f"{expr} {c.op.replace('!=', '<>')} ?", [c.value]
