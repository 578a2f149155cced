"""Names of datasets and versions, and which ones are taken: the store reserves a name
before a staged write (kernel.staging), curation creates versions under it."""

from __future__ import annotations

import re

import duckdb

from kernel.errors import StudioError

VERSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # always fullmatch: `$` lets "x\n" in


def check_name(name: str, what: str = "version") -> str:
    if not isinstance(name, str) or not VERSION_NAME.fullmatch(name):
        raise StudioError(f"invalid {what} name {name!r}: use letters, digits, '_', '-', '.' "
                          "(at most 64, starting with a letter or digit)")
    return name


def taken_versions(con: duckdb.DuckDBPyConnection, dataset: str) -> set[str]:
    """Version names of `dataset` that exist or are claimed by a staged write in progress."""
    return {r[0] for r in con.execute(
        "SELECT version FROM versions WHERE dataset = ? UNION "
        "SELECT version FROM staged_writes WHERE dataset = ?", [dataset, dataset]).fetchall()}


def next_version_name(con: duckdb.DuckDBPyConnection, dataset: str) -> str:
    names = taken_versions(con, dataset)
    nums = [int(n[1:]) for n in names if re.fullmatch(r"v\d+", n)]
    return f"v{max(nums, default=0) + 1}"


def first_free_name(name: str, taken) -> str:
    """`name` if it is not taken, else the first free `name-2`, `name-3`, ... (an import under
    a name the workspace already has, a second demo run, a suite named after a dataset)."""
    if name not in taken:
        return name
    k = 2
    while f"{name}-{k}" in taken:
        k += 1
    return f"{name}-{k}"
