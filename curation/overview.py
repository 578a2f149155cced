"""What a dataset version looks like at a glance: score names and ranges, one histogram.

The UI's Statistics tab and threshold sliders and `studio hist` read these; all are
aggregates computed in DuckDB that return a handful of rows, so they stay fast on a 1M-row
version. Lengths need no scoring first; scores are found along the version's lineage.
"""

from __future__ import annotations

from curation import versions as V
from curation.datasets import resolve_ref
from kernel.errors import StudioError
from kernel.store import Store

# measure name -> SQL over `rows r` (fixed expressions, never user text)
LENGTHS = {"response chars": "length(r.response)",
           "instruction chars": "length(r.instruction)",
           "turns": "r.n_turns"}


def score_names(store: Store, ref: str) -> list[str]:
    """Scores with at least one value on the version or one of its ancestors."""
    return [r["name"] for r in score_ranges(store, ref)]


def score_ranges(store: Store, ref: str) -> list[dict]:
    """{name, lo, hi} of each numeric score over the version's lineage (for threshold sliders)."""
    with store.connect() as con:
        dataset, version = resolve_ref(con, ref)
        chain = V.lineage(con, dataset, version)
        cur = con.execute("SELECT name, min(value) AS lo, max(value) AS hi FROM scores "
                          "WHERE dataset = ? AND list_contains(?, version) AND value IS NOT NULL "
                          "GROUP BY name ORDER BY name", [dataset, chain])
        return [dict(zip(("name", "lo", "hi"), r, strict=True)) for r in cur.fetchall()]


def histogram(store: Store, ref: str, measure: str, bins: int = 20) -> dict:
    """Equal-width histogram of a length (`LENGTHS`) or a score over the version's kept rows
    (duplicates flagged by dedup left out), plus counts per label for categorical scores."""
    with store.connect() as con:
        dataset, version = resolve_ref(con, ref)
        if measure in LENGTHS:
            base = (f"SELECT {LENGTHS[measure]} AS value, NULL AS label FROM version_rows vr "
                    "JOIN rows r ON r.rid = vr.rid "
                    "WHERE vr.dataset = ? AND vr.version = ? AND NOT vr.is_dup")
            p: list = [dataset, version]
        else:
            known = V.known_scores(con, dataset, V.lineage(con, dataset, version))
            if measure not in known:
                raise StudioError(f"no score {measure!r} on {dataset}@{version}")
            base = ("SELECT s.value, s.label FROM version_rows vr JOIN scores s ON s.rid = vr.rid "
                    "WHERE vr.dataset = ? AND vr.version = ? AND NOT vr.is_dup AND s.dataset = ? "
                    "AND s.version = ? AND s.name = ?")
            p = [dataset, version, dataset, known[measure], measure]
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
    return {"name": measure, "ref": f"{dataset}@{version}", "n": n, "n_missing": nulls,
            "min": lo, "max": hi, "mean": mean, "edges": edges, "counts": counts,
            "labels": dict(labels)}
