"""Named schema migrations, applied in order, each in a transaction with its record.

Never edit a migration that has shipped: append a new one. Each library's tables are grouped
under a comment; the store applies them all on first open of a workspace.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb

Migration = tuple[str, Callable[[duckdb.DuckDBPyConnection], None]]
MIGRATIONS: list[Migration] = []


def migration(name: str):
    def register(fn: Callable[[duckdb.DuckDBPyConnection], None]):
        if any(existing == name for existing, _ in MIGRATIONS):
            raise ValueError(f"duplicate migration name {name!r}")
        MIGRATIONS.append((name, fn))
        return fn

    return register


# --- curation -------------------------------------------------------------------------------

@migration("0001_datasets_versions_rows")
def _core(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("""
        CREATE TABLE datasets (
            name TEXT PRIMARY KEY,
            created_at TIMESTAMP DEFAULT current_timestamp,
            source TEXT,                 -- path or HF name it was imported from
            format TEXT,                 -- detected or forced input format
            mapping JSON                 -- column mapping used on import
        )""")
    # Rows are immutable: an edit makes a new row with a new uid. Versions list their rows.
    con.execute("""
        CREATE TABLE rows (
            uid TEXT PRIMARY KEY,        -- unique per stored row content (dataset-scoped)
            dataset TEXT NOT NULL,
            id TEXT NOT NULL,            -- stable user-facing id (source id kept when unique)
            messages JSON NOT NULL,      -- [{"role": ..., "content": ...}], canonical form
            system TEXT,
            instruction TEXT,            -- first user turn (single-turn convenience)
            response TEXT,               -- last assistant turn
            n_turns INTEGER,
            source_file TEXT,
            source_line BIGINT,          -- 1-based line (JSONL/CSV) or row index (Parquet/HF)
            content_hash TEXT NOT NULL,
            tags TEXT[],
            category TEXT,               -- optional grouping (task family, template, source)
            metadata JSON
        )""")
    con.execute("""
        CREATE TABLE versions (
            dataset TEXT NOT NULL,
            version TEXT NOT NULL,       -- 'v1', 'v2', ... or a user name
            parent TEXT,                 -- parent version name, NULL for the import
            operation TEXT NOT NULL,     -- import | filter | dedup | score | split | edit | exclude
            params JSON,
            n_rows BIGINT,
            created_at TIMESTAMP DEFAULT current_timestamp,
            PRIMARY KEY (dataset, version)
        )""")
    con.execute("""
        CREATE TABLE version_rows (
            dataset TEXT NOT NULL,
            version TEXT NOT NULL,
            uid TEXT NOT NULL,
            split TEXT DEFAULT 'train',  -- 'train' or 'heldout'
            dup_cluster TEXT,            -- cluster id from the dedup run that made this version
            is_dup BOOLEAN DEFAULT false
        )""")
    con.execute("""
        CREATE TABLE scores (
            dataset TEXT NOT NULL,
            version TEXT NOT NULL,
            uid TEXT NOT NULL,
            name TEXT NOT NULL,          -- e.g. 'resp_chars', 'ppl', 'ifd'
            value DOUBLE
        )""")


# --- training -------------------------------------------------------------------------------

@migration("0002_runs_checkpoints")
def _runs(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("""
        CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,          -- 'train' | 'eval' | 'curate'
            name TEXT,
            state TEXT NOT NULL,         -- queued | running | completed | failed | cancelled
            pid INTEGER,
            pgid INTEGER,
            config JSON,
            run_dir TEXT NOT NULL,
            created_at TIMESTAMP DEFAULT current_timestamp,
            started_at TIMESTAMP,
            finished_at TIMESTAMP,
            error TEXT
        )""")
    con.execute("""
        CREATE TABLE checkpoints (
            id TEXT PRIMARY KEY,         -- '<run_id>/step-<n>' ; the base model is 'base:<model>'
            run_id TEXT,
            step INTEGER,
            path TEXT NOT NULL,
            base_model TEXT NOT NULL,
            adapter_hash TEXT,
            metrics JSON,
            created_at TIMESTAMP DEFAULT current_timestamp
        )""")


# --- evals ----------------------------------------------------------------------------------

@migration("0003_generations_evals")
def _evals(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("""
        CREATE TABLE generations (
            cache_key TEXT PRIMARY KEY,  -- hash(model, adapter_hash, prompt_hash, sampling, sample_idx)
            model TEXT NOT NULL,
            adapter_hash TEXT,
            prompt_hash TEXT NOT NULL,
            sampling JSON NOT NULL,
            sample_idx INTEGER NOT NULL,
            output TEXT NOT NULL,
            n_tokens INTEGER,
            backend TEXT,
            backend_version TEXT,
            created_at TIMESTAMP DEFAULT current_timestamp
        )""")
