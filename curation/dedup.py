"""Deduplicate a version into a new one whose duplicate rows are flagged, not lost.

Each run yields clusters (`version_rows.dup_cluster`); in each cluster one keeper stays
`is_dup = false`, the others are flagged. Training and export skip flagged rows; the UI shows a
cluster's members side by side (`cluster_members`) and the user can choose other keepers
(`save_keepers`, a new version). Every method compares the whole conversation: system prompt
and every turn. Methods: exact (hash of the text normalized only for Unicode form, case and
whitespace, in SQL), near (MinHash LSH, `near_dedup`), semantic (embeddings, `semantic`).
Long work runs outside any database connection: read, close, compute, write in one transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from curation import versions as V
from curation.datasets import _resolve
from curation.errors import StudioError
from curation.store import Store

if TYPE_CHECKING:
    from curation.near_dedup import MinHashConfig

Progress = Callable[[int, int], None]
DEDUP_METHODS = ("exact", "near", "semantic")
METHODS = DEDUP_METHODS  # older name
DEFAULT_THRESHOLD = {"near": 0.8, "semantic": 0.9}
EXACT_NORMALIZATION = ("Unicode NFKC (full-width letters, ligatures, non-breaking spaces), lower "
                       "case, runs of whitespace as one space, no leading/trailing whitespace; "
                       "punctuation, operators, signs and symbols are kept")


def _turns_sql(with_roles: bool) -> str:
    """SQL text of a row's whole conversation (`r.messages`: system prompt and every turn), one
    line per message; fields beside role and content (tool calls, names) are appended as
    key=JSON so that conversations differing only there stay distinct."""
    extras = ("nullif(array_to_string(list_transform(list_filter(json_keys(m), lambda k: "
              "k NOT IN ('role', 'content')), lambda k: k || '=' || "
              "CAST(json_extract(m, '$.\"' || k || '\"') AS VARCHAR)), ' '), '')")
    role = "coalesce(m->>'role', '') || ': ', " if with_roles else ""
    return (f"array_to_string(list_transform(CAST(json_extract(r.messages, '$[*]') AS JSON[]), "
            f"lambda m: concat_ws(' ', {role}m->>'content', {extras})), chr(10))")


_TEXT_SQL = _turns_sql(with_roles=False)  # what near and semantic dedup compare
_EXACT_KEY_SQL = f"md5(studio_exact_norm({_turns_sql(with_roles=True)}))"


def exact_normalize(texts):
    """The exact-dedup normalization (EXACT_NORMALIZATION) of an Arrow string array, vectorized
    in Arrow's C++ kernels; DuckDB calls it as the SQL function `studio_exact_norm`."""
    import pyarrow.compute as pc

    out = pc.utf8_lower(pc.utf8_normalize(texts, form="NFKC"))
    out = pc.replace_substring_regex(out, pattern=r"[\s\p{Z}\x{85}]+", replacement=" ")
    return pc.utf8_trim_whitespace(out)


def _register_normalizer(con) -> None:
    con.create_function("studio_exact_norm", exact_normalize, ["VARCHAR"], "VARCHAR",
                        type="arrow", side_effects=False)


def _keep_order(keep: str, con, dataset: str, chain: list[str]) -> tuple[str, str, list]:
    """(extra JOIN, ORDER BY expression choosing the keeper first, params) for a policy."""
    if keep == "first":
        return "", "r.source_file, r.source_line", []
    if keep == "longest":
        return "", "length(r.response) DESC, r.source_file, r.source_line", []
    if keep.startswith("score:"):
        name = keep.split(":", 1)[1]
        known = V.known_scores(con, dataset, chain)
        if name not in known:
            raise StudioError(f"dedup: --keep {keep}: no score {name!r} on this version; "
                              "run `studio score` first")
        join = (" LEFT JOIN (SELECT rid, value AS kv FROM scores WHERE dataset = ? AND "
                "version = ? AND name = ?) ks ON ks.rid = r.rid")
        return join, "ks.kv DESC NULLS LAST, r.source_file, r.source_line", \
            [dataset, known[name], name]
    raise StudioError(f"dedup: unknown keeper policy {keep!r}; use first, longest or score:NAME")


def _write(con, dataset: str, version: str, keep: str, method: str, params: dict,
           out: str | None) -> str:
    """New version from temp table `_clusters(uid, cluster)`: keeper per cluster by policy."""
    chain = V.lineage(con, dataset, version)
    join, order, kparams = _keep_order(keep, con, dataset, chain)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _flags AS
        SELECT c.uid, c.cluster,
               row_number() OVER (PARTITION BY c.cluster ORDER BY {order}, r.uid) > 1 AS is_dup
        FROM _clusters c JOIN rows r ON r.uid = c.uid
        JOIN version_rows vr ON vr.uid = c.uid AND vr.dataset = ? AND vr.version = ?{join}
        WHERE c.cluster IN (SELECT cluster FROM _clusters GROUP BY 1 HAVING count(*) > 1)""",
                [dataset, version, *kparams])
    sql = ("SELECT vr.uid, vr.split, coalesce(f.cluster, vr.dup_cluster) AS dup_cluster, "
           "coalesce(f.is_dup, vr.is_dup) AS is_dup FROM version_rows vr "
           "LEFT JOIN _flags f ON f.uid = vr.uid WHERE vr.dataset = ? AND vr.version = ?")
    return V.create_version(con, dataset, version, "dedup", {"method": method, "keep": keep,
                            **params}, sql, [dataset, version], out)


def dedup(store: Store, ref: str, method: str = "exact", threshold: float | None = None,
          keep: str = "first", out: str | None = None, model: str | None = None,
          num_perm: int = 128, ngram: int = 3, progress: Progress | None = None) -> dict:
    """Cluster duplicates of a version and save a new version with non-keepers flagged.

    Returns {ref, parent, n_rows, n_clusters, n_flagged}."""
    if method not in DEDUP_METHODS:
        raise StudioError(f"dedup: unknown method {method!r}; use one of "
                          f"{', '.join(DEDUP_METHODS)}")
    params: dict = {}
    if method == "exact":
        with store.transaction() as con:
            dataset, version = _resolve(con, ref)
            _register_normalizer(con)
            con.execute(f"CREATE TEMP TABLE _clusters AS SELECT vr.uid, "
                        f"'x' || substr({_EXACT_KEY_SQL}, 1, 20) AS cluster "
                        "FROM version_rows vr JOIN rows r ON r.uid = vr.uid "
                        "WHERE vr.dataset = ? AND vr.version = ? AND NOT vr.is_dup",
                        [dataset, version])
            name = _write(con, dataset, version, keep, method, params, out)
            return _summary(con, dataset, version, name)
    threshold = DEFAULT_THRESHOLD[method] if threshold is None else float(threshold)
    with store.connect() as con:  # read, close, compute, then write
        dataset, version = _resolve(con, ref)
        got = con.execute(f"SELECT vr.uid, {_TEXT_SQL} FROM version_rows vr JOIN rows r "
                          "ON r.uid = vr.uid WHERE vr.dataset = ? AND vr.version = ? "
                          "AND NOT vr.is_dup ORDER BY vr.rowid", [dataset, version]).fetchall()
    uids = [u for u, _ in got]
    texts = [t for _, t in got]
    del got
    from curation.near_dedup import MinHashConfig, clusters_from_pairs, near_duplicate_pairs

    if method == "near":
        cfg = MinHashConfig(threshold=threshold, num_perm=num_perm, ngram=ngram)
        sig = _cached_signatures(store, dataset, version, uids, texts, cfg, progress)
        pairs, _ = near_duplicate_pairs(texts, cfg, progress, sig=sig)
        params.update(threshold=threshold, num_perm=num_perm, ngram=ngram,
                      bands=list(cfg.band_layout()))
    else:
        from curation.semantic import embed, similar_pairs
        vecs = embed(texts, model)
        pairs, _ = similar_pairs(vecs, threshold, progress=progress)
        params.update(threshold=threshold, model=model or "tfidf-lsa")
    labels = clusters_from_pairs(len(uids), pairs)
    prefix = "n" if method == "near" else "s"
    import pyarrow as pa
    table = pa.table({"uid": uids, "cluster": [f"{prefix}{k}" for k in labels.tolist()]})
    with store.transaction() as con:
        if _resolve(con, ref) != (dataset, version):
            raise StudioError(f"dedup: {ref} changed while computing; run again")
        con.register("_clusters_src", table)
        con.execute("CREATE TEMP TABLE _clusters AS SELECT * FROM _clusters_src")
        con.unregister("_clusters_src")
        name = _write(con, dataset, version, keep, method, params, out)
        return _summary(con, dataset, version, name)


def _cached_signatures(store: Store, dataset: str, version: str, uids: list[str],
                       texts: list[str], cfg: MinHashConfig, progress: Progress | None):
    """Signatures of a version, cached in `<workspace>/cache/minhash/`: versions are immutable,
    so trying another threshold on the same version reuses them (no recomputation)."""
    import hashlib

    import numpy as np

    from curation.near_dedup import signatures

    key = hashlib.sha1(json.dumps([dataset, version, cfg.num_perm, cfg.ngram, cfg.seed])
                       .encode()).hexdigest()[:20]
    path = store.workspace.root / "cache" / "minhash" / f"{key}.npz"
    if path.exists():
        got = np.load(path)
        if got["n"] == len(uids):
            return got["sig"]
    sig = signatures(texts, cfg, progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, sig=sig, n=len(uids))
    tmp.replace(path)
    return sig


def _summary(con, dataset: str, parent: str, name: str) -> dict:
    n_rows, n_flagged, n_clusters = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE is_dup), "
        "(SELECT count(*) FROM _flags WHERE NOT is_dup) "
        "FROM version_rows WHERE dataset = ? AND version = ?", [dataset, name]).fetchone()
    return {"ref": f"{dataset}@{name}", "parent": f"{dataset}@{parent}", "n_rows": n_rows,
            "n_kept": n_rows - n_flagged, "n_flagged": n_flagged, "n_clusters": n_clusters}


def clusters(store: Store, ref: str, page: int = 1, page_size: int = 20) -> tuple[list[dict], int]:
    """Clusters of a dedup version (largest first): id, size, keeper, member rows."""
    with store.connect() as con:
        dataset, version = _resolve(con, ref)
        total = con.execute("SELECT count(DISTINCT dup_cluster) FROM version_rows WHERE "
                            "dataset = ? AND version = ? AND dup_cluster IS NOT NULL",
                            [dataset, version]).fetchone()[0]
        ids = [r[0] for r in con.execute(
            "SELECT dup_cluster FROM version_rows WHERE dataset = ? AND version = ? "
            "AND dup_cluster IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT ? OFFSET ?",
            [dataset, version, page_size, (page - 1) * page_size]).fetchall()]
    return [_cluster(store, dataset, version, c) for c in ids], total


def cluster_members(store: Store, ref: str, cluster: str) -> dict:
    """One cluster: {cluster, size, keeper (uid), members: rows with is_dup}."""
    with store.connect() as con:
        dataset, version = _resolve(con, ref)
    got = _cluster(store, dataset, version, cluster)
    if not got["members"]:
        raise StudioError(f"{dataset}@{version} has no duplicate cluster {cluster!r}")
    return got


def _cluster(store: Store, dataset: str, version: str, cluster: str) -> dict:
    members = store.query(
        "SELECT r.uid, r.id, r.instruction, r.response, r.system, r.messages, r.source_file, "
        "r.source_line, vr.is_dup FROM version_rows vr JOIN rows r ON r.uid = vr.uid "
        "WHERE vr.dataset = ? AND vr.version = ? AND vr.dup_cluster = ? "
        "ORDER BY vr.is_dup, r.source_file, r.source_line", [dataset, version, cluster])
    for m in members:
        m["messages"] = json.loads(m["messages"])
    keeper = next((m["uid"] for m in members if not m["is_dup"]), None)
    return {"cluster": cluster, "size": len(members), "keeper": keeper, "members": members}


def save_keepers(store: Store, ref: str, keepers: dict[str, str], out: str | None = None) -> dict:
    """New version where each named cluster keeps the given row (uid or id) instead."""
    if not keepers:
        raise StudioError("save_keepers: no keeper overrides given")
    with store.transaction() as con:
        dataset, version = _resolve(con, ref)
        rows = con.execute(
            "SELECT vr.dup_cluster, r.uid, r.id FROM version_rows vr JOIN rows r ON r.uid = vr.uid "
            "WHERE vr.dataset = ? AND vr.version = ? AND list_contains(?, vr.dup_cluster)",
            [dataset, version, list(keepers)]).fetchall()
        chosen: dict[str, str] = {}
        for cluster, wanted in keepers.items():
            match = [uid for c, uid, rid in rows if c == cluster and wanted in (uid, rid)]
            if not match:
                raise StudioError(f"save_keepers: {wanted!r} is not a member of cluster "
                                  f"{cluster!r} in {dataset}@{version}")
            chosen[cluster] = match[0]
        sql = ("SELECT vr.uid, vr.split, vr.dup_cluster, CASE WHEN list_contains(?, "
               "vr.dup_cluster) THEN vr.uid <> map_extract(MAP(?, ?), vr.dup_cluster)[1] "
               "ELSE vr.is_dup END AS is_dup FROM version_rows vr "
               "WHERE vr.dataset = ? AND vr.version = ?")
        name = V.create_version(con, dataset, version, "edit", {"keepers": chosen}, sql,
                                [list(chosen), list(chosen), list(chosen.values()), dataset,
                                 version], out)
        n_flagged = con.execute("SELECT count(*) FILTER (WHERE is_dup) FROM version_rows "
                                "WHERE dataset = ? AND version = ?", [dataset, name]).fetchone()[0]
    return {"ref": f"{dataset}@{name}", "parent": f"{dataset}@{version}",
            "n_flagged": n_flagged, "keepers": chosen}

