"""Score a version: heuristic signals (SQL) or model-based ones (perplexity, IFD).

Scoring makes a new version (operation `score`, same rows and flags) and stores each value in
`scores` under it; later versions see it through their lineage, so `studio filter` can use
`ppl<30` on any descendant. `histogram` summarizes one score for the UI and CLI.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import duckdb
import numpy as np

from curation import heuristics
from curation.datasets import resolve_ref
from kernel import staging
from kernel.errors import StudioError
from kernel.store import Store

Progress = Callable[[int, int], None]
SCORERS = ("heuristic", "perplexity", "ifd", "model")


def score(store: Store, ref: str, scorer: str = "heuristic", model: str | None = None,
          out: str | None = None, batch_size: int = 8, max_length: int = 512,
          progress: Progress | None = None) -> dict:
    """Compute `scorer` on every row of `ref`; returns {ref, parent, scores: [names], n_rows}.

    heuristic: see `curation.heuristics`; perplexity: `ppl` (+ `resp_loss`); ifd: `ifd`
    (+ `ppl`, `resp_loss`, `resp_loss_alone`); model: both."""
    if scorer not in SCORERS:
        raise StudioError(f"score: unknown scorer {scorer!r}; use one of {', '.join(SCORERS)}")
    if scorer == "heuristic":
        return _heuristic(store, ref, out, progress)
    from curation.model_scores import ModelScoreConfig, resolve_score_model, response_losses

    cfg = ModelScoreConfig(model=resolve_score_model(store, model), batch_size=batch_size,
                           max_length=max_length)
    dataset, version, got = _kept_rows(store, ref, "messages")
    uids = [u for u, _ in got]
    cond, alone = response_losses(cfg, [json.loads(m) for _, m in got], progress)
    values: dict[str, np.ndarray] = {"resp_loss": cond,
                                     "ppl": np.exp(np.clip(cond, None, 50.0))}
    if scorer in ("ifd", "model"):
        values["resp_loss_alone"] = alone
        with np.errstate(divide="ignore", invalid="ignore"):
            values["ifd"] = cond / alone
    name = _save_values(store, dataset, version, out, uids, values,
                        {"scorer": scorer, "model": model, "max_length": max_length,
                         "scores": list(values)})
    return {"ref": f"{dataset}@{name}", "parent": f"{dataset}@{version}", "scores": list(values),
            "n_rows": len(uids)}


def save_scores(store: Store, ref: str, values: dict[str, dict[str, float]], params: dict,
                out: str | None = None) -> dict:
    """A new version of `ref` holding scores computed elsewhere: `values` maps a score name to
    {row id: value} (rows of `ref` without a value get none). For scorers that need more than
    curation has, e.g. out-of-fold losses from models trained by `training.oof`."""
    dataset, version, got = _kept_rows(store, ref, "id")
    uids = [u for u, _ in got]
    ids = [i for _, i in got]
    if len(set(ids)) != len(ids):
        raise StudioError(f"score: {dataset}@{version} has rows sharing an id; scores by id "
                          "need unique ids (dedup first)")
    arrays = {k: np.array([by_id.get(i, math.nan) for i in ids], dtype=float)
              for k, by_id in values.items()}
    name = _save_values(store, dataset, version, out, uids, arrays,
                        {**params, "scores": list(values)})
    return {"ref": f"{dataset}@{name}", "parent": f"{dataset}@{version}", "scores": list(values),
            "n_rows": len(uids)}


def _kept_rows(store: Store, ref: str, column: str) -> tuple[str, str, list[tuple]]:
    """(dataset, version, [(uid, rows.<column>)]) of the rows `ref` keeps (not flagged as
    duplicates), in version order: what a scorer scores. `column` is a name from this module."""
    with store.read() as con:
        dataset, version = resolve_ref(con, ref)
        got = con.execute(f"SELECT vr.uid, r.{column} FROM version_rows vr JOIN rows r "
                          "ON r.uid = vr.uid WHERE vr.dataset = ? AND vr.version = ? "
                          "AND NOT vr.is_dup ORDER BY vr.rowid", [dataset, version]).fetchall()
    return dataset, version, got


def _save_values(store: Store, dataset: str, version: str, out: str | None, uids: list[str],
                 values: dict[str, np.ndarray], params: dict) -> str:
    """Store one value per uid per score name (non-finite as NULL) in a new version."""
    import pyarrow as pa
    long = pa.table({
        "uid": [u for _ in values for u in uids],
        "name": [k for k in values for _ in uids],
        "value": [None if not math.isfinite(x) else float(x)
                  for k in values for x in values[k].tolist()],
    })
    return _save(store, dataset, version, out, params,
                 lambda claim: store.write_staged(claim, [
                     "INSERT INTO scores (dataset, version, uid, name, value, rid) "
                     "SELECT ?, ?, l.uid, l.name, l.value, r.rid FROM _chunk l "
                     "JOIN rows r ON r.uid = l.uid ORDER BY l.name, r.rid"],
                     long, params=[claim.dataset, claim.version]))


def _save(store: Store, dataset: str, parent: str, out: str | None, params: dict,
          write_scores: Callable) -> str:
    """A new version of `parent` holding the scores `write_scores(claim)` stages; written in
    short chunks, made visible by one short commit, removed if anything fails."""
    claim = store.claim(dataset, out)
    try:
        write_scores(claim)
        n = staging.copy_version_rows(store, claim, parent)
        with store.commit_staged(claim) as con:
            con.execute("INSERT INTO versions (dataset, version, parent, operation, params, "
                        "n_rows, created_at) VALUES (?, ?, ?, 'score', ?, ?, now())",
                        [dataset, claim.version, parent, json.dumps(params, default=str), n])
    except BaseException:
        store.abandon_staged(claim)
        raise
    return claim.version


def _heuristic(store: Store, ref: str, out: str | None, progress: Progress | None) -> dict:
    """Signals computed on a private in-memory DuckDB from a staged copy of the text: the
    workspace store is only held for short chunked reads and writes."""
    sql, params = heuristics.signals_sql()
    with store.read() as con:
        dataset, version = resolve_ref(con, ref)
        lo, hi = con.execute("SELECT min(rid), max(rid) FROM version_rows WHERE dataset = ? "
                             "AND version = ?", [dataset, version]).fetchone()
    cols = ", ".join(heuristics.NUMERIC)
    with store.stage_dir() as tmp:
        for k, start in enumerate(range(lo or 0, (hi or -1) + 1, staging.CHUNK_ROWS)):
            with store.read() as con:
                con.execute(f"COPY (SELECT vr.uid, vr.rid, coalesce(r.instruction, '') AS i, "
                            f"coalesce(r.response, '') AS o FROM version_rows vr JOIN rows r "
                            f"ON r.rid = vr.rid WHERE vr.dataset = ? AND vr.version = ? "
                            f"AND vr.rid >= ? AND vr.rid < ? AND r.rid >= ? AND r.rid < ?) "
                            f"TO '{_sql_path(tmp / f'base-{k:05d}.parquet')}' (FORMAT parquet)",
                            [dataset, version, *[start, start + staging.CHUNK_ROWS] * 2])
        if progress:
            progress(1, 3)
        with duckdb.connect() as local:
            local.execute("SET enable_progress_bar = false")
            local.execute(f"CREATE TEMP TABLE _base AS SELECT * FROM "
                          f"read_parquet('{_sql_path(tmp)}/base-*.parquet')")
            local.execute(f"CREATE TEMP TABLE _sig AS {sql}", params)
            n = local.execute("SELECT count(*) FROM _sig").fetchone()[0]
            # sorted by (name, rid): zone maps then skip most row groups when reading one score
            local.execute(f"COPY (SELECT uid, name, value, CAST(NULL AS VARCHAR) AS label, rid "
                          f"FROM (UNPIVOT (SELECT uid, rid, {cols} FROM _sig) ON {cols} "
                          f"INTO NAME name VALUE value) ORDER BY name, rid) "
                          f"TO '{_sql_path(tmp / 'scores-1.parquet')}' (FORMAT parquet)")
            local.execute(f"COPY (SELECT uid, 'lang' AS name, lang_conf AS value, lang AS label, "
                          f"rid FROM _sig ORDER BY rid) TO '{_sql_path(tmp / 'scores-2.parquet')}' "
                          f"(FORMAT parquet)")
        if progress:
            progress(2, 3)
        name = _save(store, dataset, version, out,
                     {"scorer": "heuristic", "scores": [*heuristics.NUMERIC, "lang"]},
                     lambda claim: store.write_staged(claim, [
                         "INSERT INTO scores (dataset, version, uid, name, value, label, rid) "
                         "SELECT ?, ?, uid, name, value, label, rid FROM _chunk"],
                         tmp / "scores-*.parquet", params=[claim.dataset, claim.version]))
    if progress:
        progress(3, 3)
    return {"ref": f"{dataset}@{name}", "parent": f"{dataset}@{version}",
            "scores": [*heuristics.NUMERIC, "lang"], "n_rows": n}


def _sql_path(path) -> str:
    """COPY and read_parquet take no parameter for a path: quote it as an SQL literal."""
    return str(path).replace("'", "''")
