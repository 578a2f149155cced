"""Score a version: heuristic signals (SQL) or model-based ones (perplexity, IFD).

Scoring makes a new version (operation `score`, same rows and flags) and stores each value in
`scores` under it; later versions see it through their lineage, so `studio filter` can use
`ppl<30` on any descendant. `histogram` summarizes one score for the UI and CLI.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import numpy as np

from curation import heuristics
from curation import versions as V
from curation.datasets import _resolve
from curation.errors import StudioError
from curation.store import Store

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
    with store.connect() as con:
        dataset, version = _resolve(con, ref)
        got = con.execute("SELECT vr.uid, r.messages FROM version_rows vr JOIN rows r "
                          "ON r.uid = vr.uid WHERE vr.dataset = ? AND vr.version = ? "
                          "AND NOT vr.is_dup ORDER BY vr.rowid", [dataset, version]).fetchall()
    uids = [u for u, _ in got]
    cond, alone = response_losses(cfg, [json.loads(m) for _, m in got], progress)
    values: dict[str, np.ndarray] = {"resp_loss": cond,
                                     "ppl": np.exp(np.clip(cond, None, 50.0))}
    if scorer in ("ifd", "model"):
        values["resp_loss_alone"] = alone
        with np.errstate(divide="ignore", invalid="ignore"):
            values["ifd"] = cond / alone
    import pyarrow as pa
    long = pa.table({
        "uid": [u for _ in values for u in uids],
        "name": [k for k in values for _ in uids],
        "value": [None if not math.isfinite(x) else float(x)
                  for k in values for x in values[k].tolist()],
    })
    with store.transaction() as con:
        name = V.create_version(con, dataset, version, "score",
                                {"scorer": scorer, "model": model, "max_length": max_length,
                                 "scores": list(values)},
                                V.parent_rows_sql(), [dataset, version], out)
        con.register("_long", long)
        con.execute("INSERT INTO scores (dataset, version, uid, name, value, rid) "
                    "SELECT ?, ?, l.uid, l.name, l.value, r.rid FROM _long l "
                    "JOIN rows r ON r.uid = l.uid ORDER BY l.name, r.rid", [dataset, name])
        con.unregister("_long")
    return {"ref": f"{dataset}@{name}", "parent": f"{dataset}@{version}", "scores": list(values),
            "n_rows": len(uids)}


def _heuristic(store: Store, ref: str, out: str | None, progress: Progress | None) -> dict:
    sql, params = heuristics.signals_sql()
    with store.transaction() as con:
        dataset, version = _resolve(con, ref)
        con.execute("CREATE TEMP TABLE _base AS SELECT vr.uid, vr.rid, "
                    "coalesce(r.instruction, '') AS i, "
                    "coalesce(r.response, '') AS o FROM version_rows vr JOIN rows r "
                    "ON r.uid = vr.uid WHERE vr.dataset = ? AND vr.version = ?",
                    [dataset, version])
        con.execute(f"CREATE TEMP TABLE _sig AS {sql}", params)
        if progress:
            progress(1, 2)
        name = V.create_version(con, dataset, version, "score",
                                {"scorer": "heuristic", "scores": [*heuristics.NUMERIC, "lang"]},
                                V.parent_rows_sql(), [dataset, version], out)
        cols = ", ".join(heuristics.NUMERIC)
        # sorted by (name, rid): zone maps then skip most row groups when reading one score
        con.execute(f"INSERT INTO scores (dataset, version, uid, name, value, rid) "
                    f"SELECT ?, ?, uid, name, value, rid FROM (UNPIVOT (SELECT uid, rid, {cols} "
                    f"FROM _sig) ON {cols} INTO NAME name VALUE value) ORDER BY name, rid",
                    [dataset, name])
        con.execute("INSERT INTO scores (dataset, version, uid, name, value, label, rid) "
                    "SELECT ?, ?, uid, 'lang', lang_conf, lang, rid FROM _sig ORDER BY rid",
                    [dataset, name])
        n = con.execute("SELECT count(*) FROM _sig").fetchone()[0]
    if progress:
        progress(2, 2)
    return {"ref": f"{dataset}@{name}", "parent": f"{dataset}@{version}",
            "scores": [*heuristics.NUMERIC, "lang"], "n_rows": n}


def histogram(store: Store, ref: str, name: str, bins: int = 20) -> dict:
    """Equal-width histogram of a numeric score (or counts per label for categorical ones)."""
    with store.connect() as con:
        dataset, version = _resolve(con, ref)
        chain = V.lineage(con, dataset, version)
        known = V.known_scores(con, dataset, chain)
        if name not in known:
            raise StudioError(f"no score {name!r} on {dataset}@{version}")
        base = ("SELECT s.value, s.label FROM version_rows vr JOIN scores s ON s.rid = vr.rid "
                "WHERE vr.dataset = ? AND vr.version = ? AND NOT vr.is_dup AND s.dataset = ? "
                "AND s.version = ? AND s.name = ?")
        p = [dataset, version, dataset, known[name], name]
        labels = con.execute(f"SELECT label, count(*) FROM ({base}) WHERE label IS NOT NULL "
                             "GROUP BY 1 ORDER BY 2 DESC", p).fetchall()
        lo, hi, n, mean, nulls = con.execute(
            f"SELECT min(value), max(value), count(value), avg(value), "
            f"count(*) FILTER (WHERE value IS NULL) FROM ({base})", p).fetchone()
        counts = [0] * bins
        if n:
            width = (hi - lo) / bins or 1.0
            for b, c in con.execute(
                    f"SELECT least(CAST(floor((value - ?) / ?) AS INTEGER), ?), count(*) "
                    f"FROM ({base}) WHERE value IS NOT NULL GROUP BY 1",
                    [lo, width, bins - 1, *p]).fetchall():
                counts[b] += c
        edges = [lo + k * ((hi - lo) / bins) for k in range(bins + 1)] if n else []
    return {"name": name, "ref": f"{dataset}@{version}", "n": n, "n_missing": nulls,
            "min": lo, "max": hi, "mean": mean, "edges": edges, "counts": counts,
            "labels": dict(labels)}
