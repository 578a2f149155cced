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
from curation.datasets import resolve_ref as _resolve
from kernel.errors import StudioError
from kernel.store import Store

if TYPE_CHECKING:
    from curation.near_dedup import MinHashConfig

Progress = Callable[[int, int], None]
DEDUP_METHODS = ("exact", "near", "semantic")
METHODS = DEDUP_METHODS  # older name
DEFAULT_THRESHOLD = {"near": 0.8, "semantic": 0.9}
EXACT_NORMALIZATION = ("Unicode NFKC (full-width letters, ligatures, non-breaking spaces), lower "
                       "case, runs of whitespace as one space, no leading/trailing whitespace; "
                       "punctuation, operators, signs and symbols are kept")


_PLAIN = '[{"role":"VARCHAR","content":"VARCHAR"}]'  # json_structure of role/content-only turns


def _turns_sql(with_roles: bool) -> str:
    """SQL text of a row's whole conversation (`r.messages`: system prompt and every turn), one
    line per message; fields beside role and content (tool calls, names) are appended as
    key=JSON so that conversations differing only there stay distinct. Turns with only role
    and content take a fast path (about 2x faster on 200k rows)."""
    extras = ("nullif(array_to_string(list_transform(list_filter(json_keys(m), lambda k: "
              "k NOT IN ('role', 'content')), lambda k: k || '=' || "
              "CAST(json_extract(m, '$.\"' || k || '\"') AS VARCHAR)), ' '), '')")
    role = "coalesce(m->>'role', '') || ':', " if with_roles else ""
    slow = (f"array_to_string(list_transform(CAST(json_extract(r.messages, '$[*]') AS JSON[]), "
            f"lambda m: concat_ws(' ', {role}m->>'content', {extras})), chr(10))")
    pairs = ("list_zip(json_extract_string(r.messages, '$[*].role'), "
             "json_extract_string(r.messages, '$[*].content'))")
    line = "concat_ws(' ', p[1] || ':', p[2])" if with_roles else "coalesce(p[2], '')"
    fast = f"array_to_string(list_transform({pairs}, lambda p: {line}), chr(10))"
    return (f"CASE WHEN CAST(json_structure(r.messages) AS VARCHAR) = '{_PLAIN}' "
            f"THEN {fast} ELSE {slow} END")


_TEXT_SQL = _turns_sql(with_roles=False)  # what near and semantic dedup compare
_EXACT_KEY_SQL = f"md5(studio_exact_norm({_turns_sql(with_roles=True)}))"


# whitespace other than the plain space (ASCII controls, NEL, the Unicode space separators)
_ODD_SPACE = (r"\t\n\f\r\x{0b}\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}"
              r"\x{205f}\x{3000}")


def exact_normalize(texts):
    """The exact-dedup normalization (EXACT_NORMALIZATION) of an Arrow string array, vectorized
    in Arrow's C++ kernels; DuckDB calls it as the SQL function `studio_exact_norm`. NFKC runs
    only on non-ASCII rows and the whitespace regex only matches what it changes (runs, and
    whitespace other than a space): 4x faster than replacing every space."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    ascii_only = pc.fill_null(pc.string_is_ascii(texts), True)
    if not pc.all(ascii_only).as_py():
        other = pc.invert(ascii_only)
        texts = pc.replace_with_mask(texts, other,
                                     pc.utf8_normalize(pc.filter(texts, other), form="NFKC"))
    out = pc.utf8_lower(texts)
    out = pc.replace_substring_regex(out, pattern=f"[ {_ODD_SPACE}]{{2,}}|[{_ODD_SPACE}]",
                                     replacement=" ")
    return pc.utf8_trim_whitespace(out)


def _register_normalizer(con) -> None:
    con.create_function("studio_exact_norm", exact_normalize, ["VARCHAR"], "VARCHAR",
                        type="arrow", side_effects=False)


# Keeper policies besides score:NAME. tidy: the member whose messages need the least whitespace
# clean-up (padding at either end, runs of spaces or tabs), then the first: of a padded copy and
# the original, a model trained on the kept row should see the form the rest of the data has.
KEEP_POLICIES = ("first", "longest", "tidy")
_UNTIDY_SQL = ("list_sum(list_transform(json_extract_string(r.messages, '$[*].content'), lambda c: "
               "length(coalesce(c, '')) - length(regexp_replace(regexp_replace(coalesce(c, ''), "
               "'[ \\t]{2,}', ' ', 'g'), '^\\s+|\\s+$', '', 'g'))))")


def _keep_order(keep: str, con, dataset: str, chain: list[str]) -> tuple[str, str, list]:
    """(extra JOIN, ORDER BY expression choosing the keeper first, params) for a policy."""
    if keep == "first":
        return "", "r.source_file, r.source_line", []
    if keep == "longest":
        return "", "length(r.response) DESC, r.source_file, r.source_line", []
    if keep == "tidy":
        return "", f"{_UNTIDY_SQL}, r.source_file, r.source_line", []
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
    raise StudioError(f"dedup: unknown keeper policy {keep!r}; use {', '.join(KEEP_POLICIES)} "
                      "or score:NAME")


def _write(con, dataset: str, version: str, method: str, params: dict, name: str) -> str:
    """New version from temp table `_flags(uid, cluster, is_dup, keeper, similarity)` (members
    of clusters of two or more); the similarities go to `dup_similarity`."""
    sql = ("SELECT vr.uid, vr.split, coalesce(f.cluster, vr.dup_cluster) AS dup_cluster, "
           "coalesce(f.is_dup, vr.is_dup) AS is_dup FROM version_rows vr "
           "LEFT JOIN _flags f ON f.uid = vr.uid WHERE vr.dataset = ? AND vr.version = ?")
    name = V.create_version(con, dataset, version, "dedup", {"method": method, **params}, sql,
                            [dataset, version], name)
    con.execute("INSERT INTO dup_similarity SELECT ?, ?, cluster, uid, keeper, similarity "
                "FROM _flags", [dataset, name])
    return name


def _new_name(con, dataset: str, out: str | None) -> str:
    """The new version's name, known before writing: cluster ids carry it, so ids from two
    dedup runs in one lineage never collide."""
    return V.check_name(out) if out else V.next_version_name(con, dataset)


def dedup(store: Store, ref: str, method: str = "exact", threshold: float | None = None,
          keep: str = "first", out: str | None = None, model: str | None = None,
          num_perm: int = 128, ngram: int = 3, progress: Progress | None = None) -> dict:
    """Cluster duplicates of a version and save a new version with non-keepers flagged.

    Near and semantic dedup use leader clustering (`clustering`): rows are visited in the
    keeper policy's order and each flagged row is within the threshold of its keeper.
    Returns {ref, parent, n_rows, n_kept, n_flagged, n_clusters}."""
    if method not in DEDUP_METHODS:
        raise StudioError(f"dedup: unknown method {method!r}; use one of "
                          f"{', '.join(DEDUP_METHODS)}")
    params: dict = {"keep": keep}
    if method == "exact":
        with store.transaction() as con:
            dataset, version = _resolve(con, ref)
            join, order, kparams = _keep_order(keep, con, dataset, V.lineage(con, dataset, version))
            name = _new_name(con, dataset, out)
            _register_normalizer(con)
            con.execute(f"""
                CREATE TEMP TABLE _keys AS
                SELECT vr.uid, 'x' || substr({_EXACT_KEY_SQL}, 1, 16) || '.' || ? AS cluster
                FROM version_rows vr JOIN rows r ON r.uid = vr.uid
                WHERE vr.dataset = ? AND vr.version = ? AND NOT vr.is_dup""",
                        [name, dataset, version])
            con.execute(f"""
                CREATE TEMP TABLE _flags AS
                SELECT k.uid, k.cluster, row_number() OVER w > 1 AS is_dup,
                       first_value(k.uid) OVER w AS keeper, 1.0 AS similarity
                FROM _keys k JOIN rows r ON r.uid = k.uid{join}
                WHERE k.cluster IN (SELECT cluster FROM _keys GROUP BY 1 HAVING count(*) > 1)
                WINDOW w AS (PARTITION BY k.cluster ORDER BY {order}, r.uid
                             ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)""",
                        kparams)
            _write(con, dataset, version, method, params, name)
            return _summary(con, dataset, version, name)
    threshold = DEFAULT_THRESHOLD[method] if threshold is None else float(threshold)
    with store.connect() as con:  # read, close, compute, then write
        dataset, version = _resolve(con, ref)
        join, order, kparams = _keep_order(keep, con, dataset, V.lineage(con, dataset, version))
        got = con.execute(
            f"SELECT vr.uid, {_TEXT_SQL}, row_number() OVER (ORDER BY {order}, r.uid) - 1 "
            f"FROM version_rows vr JOIN rows r ON r.uid = vr.uid{join} "
            "WHERE vr.dataset = ? AND vr.version = ? AND NOT vr.is_dup ORDER BY vr.rowid",
            [*kparams, dataset, version]).fetchall()
    uids = [u for u, _, _ in got]
    texts = [t for _, t, _ in got]
    priority = [p for _, _, p in got]
    del got
    import numpy as np

    by_priority = np.argsort(np.asarray(priority, dtype=np.int64), kind="stable")
    ordered = [texts[k] for k in by_priority]
    if method == "near":
        from curation.clustering import leader_clusters_from_pairs
        from curation.near_dedup import MinHashConfig, verified_pairs

        cfg = MinHashConfig(threshold=threshold, num_perm=num_perm, ngram=ngram)
        sig = _cached_signatures(store, dataset, version, uids, texts, cfg, progress)
        pairs, sims = verified_pairs(ordered, cfg, sig[by_priority])
        found = leader_clusters_from_pairs(len(uids), pairs, sims, threshold)
        params.update(threshold=threshold, num_perm=num_perm, ngram=ngram,
                      bands=list(cfg.band_layout()), similarity="jaccard")
    else:
        from curation.semantic import FALLBACK, embed, leader_clusters

        found = leader_clusters(embed(ordered, model), threshold, progress=progress)
        params.update(threshold=threshold, model=model or FALLBACK, similarity="cosine")
    import pyarrow as pa

    sizes = found.sizes()
    member = np.flatnonzero(sizes[found.leader] > 1)  # positions in priority order
    prefix = "n" if method == "near" else "s"
    with store.transaction() as con:
        if _resolve(con, ref) != (dataset, version):
            raise StudioError(f"dedup: {ref} changed while computing; run again")
        name = _new_name(con, dataset, out)
        uid_at = np.asarray(uids, dtype=object)[by_priority]
        table = pa.table({
            "uid": uid_at[member].tolist(),
            "cluster": [f"{prefix}{k}.{name}" for k in found.leader[member].tolist()],
            "is_dup": (found.leader[member] != member).tolist(),
            "keeper": uid_at[found.leader[member]].tolist(),
            "similarity": found.similarity[member].astype(np.float64).tolist()})
        con.register("_flags_src", table)
        con.execute("CREATE TEMP TABLE _flags AS SELECT * FROM _flags_src")
        con.unregister("_flags_src")
        _write(con, dataset, version, method, params, name)
        return _summary(con, dataset, version, name)


def _cached_signatures(store: Store, dataset: str, version: str, uids: list[str],
                       texts: list[str], cfg: MinHashConfig, progress: Progress | None):
    """Signatures of a version, cached in `<workspace>/cache/minhash/`: versions are immutable,
    so trying another threshold on the same version reuses them (no recomputation)."""
    import hashlib

    import numpy as np

    from curation.near_dedup import signatures

    # "v2": whole-conversation text and character tokens for Han/kana (older caches differ)
    key = hashlib.sha1(json.dumps([dataset, version, cfg.num_perm, cfg.ngram, cfg.seed, "v2"])
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
    """Clusters of a dedup version (largest first): id, size, keeper, member rows (each with
    its similarity to the row kept by the dedup run)."""
    with store.connect() as con:
        dataset, version = _resolve(con, ref)
        total = con.execute("SELECT count(DISTINCT dup_cluster) FROM version_rows WHERE "
                            "dataset = ? AND version = ? AND dup_cluster IS NOT NULL",
                            [dataset, version]).fetchone()[0]
        ids = [r[0] for r in con.execute(
            "SELECT dup_cluster FROM version_rows WHERE dataset = ? AND version = ? "
            "AND dup_cluster IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT ? OFFSET ?",
            [dataset, version, page_size, (page - 1) * page_size]).fetchall()]
        members = _members(con, dataset, version, ids)
    return [_cluster(c, members.get(c, [])) for c in ids], total


def cluster_members(store: Store, ref: str, cluster: str) -> dict:
    """One cluster: {cluster, size, keeper (uid), members: rows with is_dup, similarity}."""
    with store.connect() as con:
        dataset, version = _resolve(con, ref)
        got = _cluster(cluster, _members(con, dataset, version, [cluster]).get(cluster, []))
    if not got["members"]:
        raise StudioError(f"{dataset}@{version} has no duplicate cluster {cluster!r}")
    return got


def _members(con, dataset: str, version: str, ids: list[str]) -> dict[str, list[dict]]:
    """Rows of the given clusters, keeper first; each with its `similarity` to the row the
    dedup run kept (`similar_to`, a uid)."""
    cur = con.execute(
        "SELECT vr.dup_cluster AS cluster, r.uid, r.id, r.instruction, r.response, r.system, "
        "r.messages, r.source_file, r.source_line, vr.is_dup, ds.similarity, "
        "ds.keeper AS similar_to FROM version_rows vr JOIN rows r ON r.uid = vr.uid "
        "LEFT JOIN dup_similarity ds ON ds.dataset = vr.dataset AND ds.cluster = vr.dup_cluster "
        "AND ds.uid = vr.uid WHERE vr.dataset = ? AND vr.version = ? "
        "AND list_contains(?, vr.dup_cluster) "
        "ORDER BY vr.is_dup, ds.similarity DESC NULLS LAST, r.source_file, r.source_line",
        [dataset, version, ids])
    cols = [d[0] for d in cur.description]
    out: dict[str, list[dict]] = {}
    for row in cur.fetchall():
        m = dict(zip(cols, row, strict=True))
        m["messages"] = json.loads(m["messages"])
        out.setdefault(m.pop("cluster"), []).append(m)
    return out


def _cluster(cluster: str, members: list[dict]) -> dict:
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

