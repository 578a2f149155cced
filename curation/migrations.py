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


@migration("0004_eval_suites_scores")
def _eval_suites(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("ALTER TABLE generations ADD COLUMN batch_size INTEGER")
    con.execute("ALTER TABLE generations ADD COLUMN finish_reason TEXT")
    con.execute("""
        CREATE TABLE eval_suites (
            name TEXT PRIMARY KEY,
            role TEXT NOT NULL,          -- 'task' (should improve) | 'general' (must not forget)
            source TEXT,                 -- dataset ref 'NAME@VERSION' or imported file path
            metrics JSON NOT NULL,       -- metric specs, e.g. ["exact_match", "regex:^\\d+$"]
            sampling JSON NOT NULL,      -- evals.types.SamplingConfig
            group_by TEXT,               -- row field used for clustered SEs (e.g. 'category')
            n_rows INTEGER,
            created_at TIMESTAMP DEFAULT current_timestamp
        )""")
    # A suite is a frozen snapshot of its rows, so results stay comparable as datasets evolve.
    con.execute("""
        CREATE TABLE eval_suite_rows (
            suite TEXT NOT NULL,
            idx INTEGER NOT NULL,
            row_id TEXT NOT NULL,
            messages JSON NOT NULL,
            reference TEXT,
            category TEXT,
            tags TEXT[],
            grp TEXT,                    -- cluster for statistics (value of the suite's group_by)
            PRIMARY KEY (suite, row_id)
        )""")
    con.execute("""
        CREATE TABLE eval_scores (
            suite TEXT NOT NULL,
            checkpoint TEXT NOT NULL,    -- checkpoint id ('base:<model>' or '<run>/step-N')
            row_id TEXT NOT NULL,
            sample_idx INTEGER NOT NULL,
            metric TEXT NOT NULL,        -- metric spec
            value DOUBLE,
            cache_key TEXT,              -- the generation scored (generations.cache_key)
            created_at TIMESTAMP DEFAULT current_timestamp,
            PRIMARY KEY (suite, checkpoint, row_id, sample_idx, metric)
        )""")
    con.execute("""
        CREATE TABLE eval_runs (
            suite TEXT NOT NULL,
            checkpoint TEXT NOT NULL,
            model TEXT,
            adapter_hash TEXT,
            backend TEXT,
            n_generated INTEGER,         -- generations made (the rest came from the cache)
            n_cached INTEGER,
            summary JSON,                -- metric -> mean
            contamination JSON,          -- flagged held-out rows, if checked
            created_at TIMESTAMP DEFAULT current_timestamp
        )""")


# --- curation (2) ---------------------------------------------------------------------------

@migration("0005_curation_score_labels")
def _score_labels(con: duckdb.DuckDBPyConnection) -> None:
    # Some signals are categorical (detected language): `label` holds them beside `value`.
    con.execute("ALTER TABLE scores ADD COLUMN label TEXT")


@migration("0006_curation_int_keys_lengths")
def _row_keys(con: duckdb.DuckDBPyConnection) -> None:
    # An integer row key makes the version_rows -> rows join ~4x cheaper than the md5 uid on
    # 1M rows, and stored lengths let length filters skip reading the text (browse latency).
    con.execute("ALTER TABLE rows ADD COLUMN rid BIGINT")
    con.execute("ALTER TABLE rows ADD COLUMN inst_chars INTEGER")
    con.execute("ALTER TABLE rows ADD COLUMN resp_chars INTEGER")
    con.execute("ALTER TABLE version_rows ADD COLUMN rid BIGINT")
    con.execute("CREATE TEMP TABLE _rid AS SELECT uid, row_number() OVER "
                "(ORDER BY dataset, source_file, source_line, uid) AS rid FROM rows")
    con.execute("UPDATE rows SET rid = _rid.rid, inst_chars = length(rows.instruction), "
                "resp_chars = length(rows.response) FROM _rid WHERE rows.uid = _rid.uid")
    con.execute("UPDATE version_rows SET rid = _rid.rid FROM _rid WHERE version_rows.uid = _rid.uid")
    con.execute("DROP TABLE _rid")


@migration("0007_curation_score_rids")
def _score_rids(con: duckdb.DuckDBPyConnection) -> None:
    # Scores join rows and versions by the integer row key (see 0006).
    con.execute("ALTER TABLE scores ADD COLUMN rid BIGINT")
    con.execute("UPDATE scores SET rid = rows.rid FROM rows WHERE scores.uid = rows.uid")


# --- models (issue 16) ----------------------------------------------------------------------

@migration("0040_models")
def _models(con: duckdb.DuckDBPyConnection) -> None:
    # Base models imported into the workspace (training.models): folder models/<name>.
    con.execute("""
        CREATE TABLE models (
            name TEXT PRIMARY KEY,
            path TEXT NOT NULL,          -- relative to the workspace root (models/<name>)
            source TEXT NOT NULL,        -- what was imported: file, folder, hub or offline name
            source_kind TEXT NOT NULL,   -- offline | gguf | hf-folder | hub
            architecture TEXT,           -- transformers class, e.g. LlamaForCausalLM
            n_parameters BIGINT,
            context_length INTEGER,
            chat_template TEXT,
            template_source TEXT,        -- 'model' or 'built-in' (the model had none)
            eos_token TEXT,
            content_hash TEXT,           -- sha256 over the folder's files
            created_at TIMESTAMP DEFAULT current_timestamp
        )""")
