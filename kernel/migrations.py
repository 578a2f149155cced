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


# --- dedup (issue 9) -------------------------------------------------------------------------

@migration("0020_dedup_similarity")
def _dedup_similarity(con: duckdb.DuckDBPyConnection) -> None:
    # Each dedup run records, per member of a cluster, the row it kept (its leader) and their
    # similarity (1.0 for exact), so cluster cards can show how close every member is.
    con.execute("""
        CREATE TABLE dup_similarity (
            dataset TEXT NOT NULL,
            version TEXT NOT NULL,       -- the dedup version that made the cluster
            cluster TEXT NOT NULL,
            uid TEXT NOT NULL,
            keeper TEXT NOT NULL,        -- uid of the row kept for this cluster by that run
            similarity DOUBLE NOT NULL
        )""")


# --- evals (2) ------------------------------------------------------------------------------

@migration("0035_generations_backend_config")
def _generation_backend_config(con: duckdb.DuckDBPyConnection) -> None:
    # The backend identity (name, dtype, quantization or server) is part of the cache key since
    # this migration; each generation and each eval run records it. Older generations keep
    # NULL: their keys lack the backend, so no new key can hit them (they are regenerated).
    con.execute("ALTER TABLE generations ADD COLUMN backend_config JSON")
    con.execute("ALTER TABLE eval_runs ADD COLUMN backend_config JSON")


# --- training: seed groups (issue 12) -------------------------------------------------------

@migration("0050_training_run_groups")
def _run_groups(con: duckdb.DuckDBPyConnection) -> None:
    # Runs of one config with several seeds: compare reads a group to count seed variance.
    con.execute("""
        CREATE TABLE run_groups (
            id TEXT PRIMARY KEY,
            name TEXT,                   -- the config's name (runs are named '<name>-seed<S>')
            config JSON,                 -- the shared TrainConfig, seed left out
            created_at TIMESTAMP DEFAULT current_timestamp
        )""")
    con.execute("""
        CREATE TABLE run_group_members (
            group_id TEXT NOT NULL,
            run_id TEXT NOT NULL,
            seed INTEGER NOT NULL,
            PRIMARY KEY (group_id, run_id)
        )""")


# --- training: provenance (issue 13) --------------------------------------------------------

@migration("0055_run_provenance")
def _run_provenance(con: duckdb.DuckDBPyConnection) -> None:
    # What each train run trained on (training.provenance); the run folder's provenance.json
    # is the source, this table makes "runs trained on dataset@version" a query.
    con.execute("""
        CREATE TABLE run_provenance (
            run_id TEXT PRIMARY KEY,
            dataset TEXT,                -- NULL when trained from a data_file
            version TEXT,                -- the exact version (a bare name is pinned at launch)
            dataset_ref TEXT,            -- 'NAME@VERSION'
            data_file TEXT,
            n_rows BIGINT,
            n_train BIGINT,
            n_eval BIGINT,
            rows_sha256 TEXT,            -- order-independent hash of the rows' contents
            train_file_sha256 TEXT,      -- the exported train.jsonl
            eval_file_sha256 TEXT,
            base_model TEXT,
            base_model_sha256 TEXT,      -- hash of the weight files (None: not found locally)
            config JSON,                 -- the full resolved TrainConfig
            code_version TEXT,
            git_commit TEXT,
            git_dirty BOOLEAN,
            packages JSON,               -- torch, transformers, peft, ... versions
            created_at TIMESTAMP DEFAULT current_timestamp
        )""")
    # Eval results keep the identifying part of the checkpoint's provenance.
    con.execute("ALTER TABLE eval_runs ADD COLUMN provenance JSON")


@migration("0056_ablations")
def _ablations(con: duckdb.DuckDBPyConnection) -> None:
    # evals.ablation: one run per (version on a lineage, seed) with identical settings.
    con.execute("""
        CREATE TABLE ablations (
            id TEXT PRIMARY KEY,
            ref TEXT NOT NULL,           -- the last version 'NAME@VERSION'
            suite TEXT NOT NULL,
            config JSON NOT NULL,        -- the shared TrainConfig (dataset and seed vary)
            seeds JSON NOT NULL,
            versions JSON NOT NULL,      -- the version refs compared, oldest first
            created_at TIMESTAMP DEFAULT current_timestamp
        )""")
    con.execute("""
        CREATE TABLE ablation_runs (
            ablation_id TEXT NOT NULL,
            version_ref TEXT NOT NULL,
            seed INTEGER NOT NULL,
            run_id TEXT NOT NULL,
            PRIMARY KEY (ablation_id, version_ref, seed)
        )""")


# --- store: staged writes (issue 14) ---------------------------------------------------------

@migration("0030_staged_writes")
def _staged_writes(con: duckdb.DuckDBPyConnection) -> None:
    # Long writes go in short chunks (kernel.store.Store.write_staged) under a claim that
    # keeps them invisible until one short commit; a claim whose process died is swept.
    con.execute("""
        CREATE TABLE staged_writes (
            token TEXT PRIMARY KEY,
            dataset TEXT NOT NULL,
            version TEXT NOT NULL,
            new_dataset BOOLEAN NOT NULL,  -- an import: its rows are staged too
            pid BIGINT,
            pid_start BIGINT,
            created_at TIMESTAMP DEFAULT current_timestamp
        )""")


# --- curation: search index, rows without uid index (issue 9) ----------------------------

@migration("0025_curation_text_search_index")
def _text_search(con: duckdb.DuckDBPyConnection) -> None:
    # Inverted word index for `text~'...'` (curation/search.py): a vocabulary per dataset and
    # postings (token id -> row key) stored sorted by token id, so a lookup reads few row
    # groups. Rows are immutable, so the index only grows; `search_state` says how far it goes.
    con.execute("CREATE TABLE search_vocab (dataset TEXT NOT NULL, tid INTEGER NOT NULL, "
                "token TEXT NOT NULL, df BIGINT NOT NULL)")  # df: rows holding the token
    con.execute("CREATE TABLE search_postings (dataset TEXT NOT NULL, tid INTEGER NOT NULL, "
                "rid BIGINT NOT NULL)")
    con.execute("CREATE TABLE search_state (dataset TEXT PRIMARY KEY, max_rid BIGINT NOT NULL)")


@migration("0026_curation_rows_without_uid_index")
def _rows_without_uid_index(con: duckdb.DuckDBPyConnection) -> None:
    # The PRIMARY KEY on rows.uid kept an ART index that doubled the cost of writing rows (1M-row
    # import). uids are unique by construction (md5 of dataset, id and content hash; ids are
    # unique within a dataset; edits insert only uids not already there), joins on them are
    # hash joins, so the table is rebuilt without it, in row-key order, keeping NOT NULLs.
    con.execute("CREATE TABLE _rows_new AS SELECT * FROM rows ORDER BY rid")
    con.execute("DROP TABLE rows")
    con.execute("ALTER TABLE _rows_new RENAME TO rows")
    for column in ("uid", "dataset", "id", "messages", "content_hash"):
        con.execute(f"ALTER TABLE rows ALTER COLUMN {column} SET NOT NULL")


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


# --- training: kinds of run groups, sweeps (issue 13) -----------------------------------------

@migration("0070_run_group_kinds")
def _run_group_kinds(con: duckdb.DuckDBPyConnection) -> None:
    # A run group is seeds of one config (`train --seeds`), a sweep (`studio sweep`) or an
    # ablation (`studio ablate`); members carry what varies between them (`params`) and why a
    # run was stopped by the sweep (`note`, e.g. successive halving). Existing ablations become
    # groups with their ablation id, so every multi-run experiment is found the same way.
    con.execute("ALTER TABLE run_groups ADD COLUMN kind TEXT DEFAULT 'seeds'")
    con.execute("UPDATE run_groups SET kind = 'seeds' WHERE kind IS NULL")
    con.execute("ALTER TABLE run_groups ADD COLUMN spec JSON")  # a sweep's suite, axes, ...
    con.execute("ALTER TABLE run_group_members ADD COLUMN params JSON")
    con.execute("ALTER TABLE run_group_members ADD COLUMN note TEXT")
    con.execute("INSERT INTO run_groups (id, name, config, kind, created_at) "
                "SELECT id, id, config, 'ablation', created_at FROM ablations")
    con.execute("INSERT INTO run_group_members (group_id, run_id, seed, params) "
                "SELECT ablation_id, run_id, seed, json_object('dataset', version_ref) "
                "FROM ablation_runs")


@migration("0078_comparison_cache")
def _comparison_cache(con: duckdb.DuckDBPyConnection) -> None:
    # Paired statistics of two checkpoints' stored results, computed once: the key hashes the
    # suite, both checkpoints, their results' fingerprints and the statistics' settings.
    con.execute("""
        CREATE TABLE comparison_cache (
            key TEXT PRIMARY KEY,
            suite TEXT NOT NULL,
            baseline TEXT NOT NULL,
            candidate TEXT NOT NULL,
            comparison TEXT NOT NULL,    -- Comparison.to_dict() as JSON (NaN allowed)
            created_at TIMESTAMP DEFAULT current_timestamp
        )""")


# --- curation: narrow rows, `rows` a view (issue 9: import at DuckDB speed) -----------------

def plain_messages_sql(system: str, instruction: str, response: str) -> str:
    """SQL of the canonical messages JSON of a plain single-turn row (an optional system
    prompt, one user turn, one assistant turn) from its text columns: the exact text the
    import stores and hashes (`content_hash`), so deriving it gives the same bytes."""
    user_asst = (f"'{{\"role\":\"user\",\"content\":' || to_json({instruction}) || "
                 f"'}},{{\"role\":\"assistant\",\"content\":' || to_json({response}) || '}}]'")
    return (f"CASE WHEN {system} IS NULL THEN '[' || {user_asst} ELSE "
            f"'[{{\"role\":\"system\",\"content\":' || to_json({system}) || '}},' "
            f"|| {user_asst} END")


def _create_rows_view(con: duckdb.DuckDBPyConnection) -> None:
    """`rows`: `row_data` with `messages` derived where a plain single turn stores none."""
    derived = plain_messages_sql("system", "instruction", "response")
    con.execute(f"CREATE VIEW rows AS SELECT * REPLACE (coalesce(messages, {derived}) "
                "AS messages) FROM row_data")


@migration("0086_curation_rows_view_derived_messages")
def _rows_view(con: duckdb.DuckDBPyConnection) -> None:
    # `messages` was a second copy of the text of every single-turn row (the same text is in
    # instruction/response/system): writing it was the largest cost of an import (1M rows).
    # The table is now `row_data`, whose `messages` is NULL when the row is a plain
    # single turn, and `rows` is a view that derives it there, so every reader keeps reading
    # `rows` unchanged. Writers (import, edit, the staged-write sweep) write `row_data`.
    # Existing rows keep their stored messages (the view prefers them). A later migration
    # that changes the table alters `row_data` (the view picks up added columns).
    con.execute("ALTER TABLE rows RENAME TO row_data")
    con.execute("ALTER TABLE row_data ALTER COLUMN messages DROP NOT NULL")
    _create_rows_view(con)


# --- curation: hash columns stored uncompressed (issue 9: import at DuckDB speed) -----------

def _rebuild_uncompressed(con: duckdb.DuckDBPyConnection, table: str,
                          columns: tuple[str, ...]) -> None:
    """Rebuild `table` with `columns` stored uncompressed, keeping every column's type, NOT
    NULL and default, and its rows in their order (no sort: insertion order is kept)."""
    defs = []
    for name, dtype, nullable, default in con.execute(
            "SELECT column_name, data_type, is_nullable, column_default FROM duckdb_columns() "
            "WHERE table_name = ? AND schema_name = 'main' ORDER BY column_index",
            [table]).fetchall():
        spec = f'"{name}" {dtype}'
        if default is not None:
            spec += f" DEFAULT ({default})"
        if name in columns:
            spec += " USING COMPRESSION uncompressed"
        if not nullable:
            spec += " NOT NULL"
        defs.append(spec)
    con.execute(f"CREATE TABLE _{table}_new ({', '.join(defs)})")
    con.execute(f"INSERT INTO _{table}_new SELECT * FROM {table}")
    con.execute(f"DROP TABLE {table}")
    con.execute(f"ALTER TABLE _{table}_new RENAME TO {table}")


@migration("0090_curation_hash_columns_uncompressed")
def _hash_columns_uncompressed(con: duckdb.DuckDBPyConnection) -> None:
    # Hex md5 text (uid, content_hash, the ids made from it) is random: DuckDB's string
    # compression spent most of a 1M-row import's row write analysing it and then halved its
    # size at best. Stored uncompressed, the rows of a 1M-row import write in about 0.7 s less
    # (AMD EPYC, 2 cores) and a lookup by uid scans faster; it costs ~40 MB per 1M rows on disk.
    # The uids of version_rows too (one per row and version). Not `scores`: one uid per row
    # and score name, where halving the size matters more than the write time (and scores are
    # no part of an import).
    con.execute("DROP VIEW rows")
    _rebuild_uncompressed(con, "row_data", ("uid", "id", "content_hash"))
    _rebuild_uncompressed(con, "version_rows", ("uid",))
    _create_rows_view(con)
