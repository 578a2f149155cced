"""Semantic near-duplicates: embeddings, cosine similarity in blocks, leader clusters.

Embeddings come from a sentence-transformers model (local path or name) when one is given and
the optional `semantic` extra is installed. Without a model the fallback is TF-IDF (words and
word pairs; Han/kana characters count as words): its cosine is exact and needs no model, and it
is what a reviewer can check by hand. (It replaced a TF-IDF -> 128-d LSA projection whose
cosines ran high for unrelated rows and whose SVD took most of the time.)

Similar rows are found with blocked dense matrix products: a block of rows (in keep-priority
order) against all later rows, keeping entries at/above the threshold, so memory stays bounded
and no pair list is built; `clustering.LeaderClusters` turns them into clusters. Sparse TF-IDF
rows are searched through a 256-d count sketch and every candidate is checked with its exact
cosine, so a reported similarity is always the real one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import sparse

from curation.clustering import LeaderClusters
from kernel.errors import StudioError

Progress = Callable[[int, int], None]
FALLBACK = "tfidf"
SKETCH_DIMS = 256
SKETCH_MARGIN = 0.15  # sketch cosines this far below the threshold are still checked


def embed(texts: Sequence[str], model: str | None = None, batch_size: int = 64):
    """L2-normalized vectors, one row per text: a dense float32 array from `model`
    (sentence-transformers), else a sparse TF-IDF matrix."""
    if model:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise StudioError("semantic dedup: --model needs the `semantic` extra "
                              "(pip install 'tuning-studio[semantic]')") from exc
        try:
            enc = SentenceTransformer(model)
        except Exception as exc:
            raise StudioError(f"semantic dedup: cannot load embedding model {model!r}: {exc}") \
                from exc
        return np.asarray(enc.encode(list(texts), batch_size=batch_size,
                                     normalize_embeddings=True), dtype=np.float32)
    return tfidf_vectors(texts)


def _words_and_pairs(text: str) -> list[str]:
    """TF-IDF features: tokens (words; Han/kana characters) and pairs of adjacent tokens."""
    from curation.near_dedup import TOKEN

    toks = TOKEN.findall((text or "").lower())
    return toks + [a + " " + b for a, b in zip(toks, toks[1:], strict=False)]


def tfidf_vectors(texts: Sequence[str]) -> sparse.csr_matrix:
    """L2-normalized TF-IDF (sublinear tf) of tokens and token pairs, hashed into 2^22
    columns (no vocabulary to build: about twice as fast on 20k rows)."""
    from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer

    counts = HashingVectorizer(n_features=1 << 22, alternate_sign=False, norm=None,
                               analyzer=_words_and_pairs, dtype=np.float32).transform(texts)
    return TfidfTransformer(sublinear_tf=True).fit_transform(counts).astype(np.float32).tocsr()


def cosine_sim(vecs, i: np.ndarray, j: np.ndarray, chunk: int = 200_000) -> np.ndarray:
    """Cosine of rows i[k] and j[k] of normalized vectors (dense or sparse)."""
    out = np.empty(len(i), dtype=np.float32)
    for s in range(0, len(i), chunk):
        a, b = i[s:s + chunk], j[s:s + chunk]
        if sparse.issparse(vecs):
            out[s:s + chunk] = np.asarray(vecs[a].multiply(vecs[b]).sum(axis=1)).ravel()
        else:
            out[s:s + chunk] = np.einsum("ij,ij->i", vecs[a], vecs[b])
    return out


def sketch(vecs: sparse.csr_matrix, dims: int = SKETCH_DIMS, seed: int = 0) -> np.ndarray:
    """Dense (n, dims) normalized count sketch of sparse rows (each column goes to one of
    `dims` slots with a random sign): cosines are kept to about +-0.02 near 0.9, enough to
    pick candidates that are then checked against the exact vectors."""
    rng = np.random.default_rng(seed)
    n_cols = vecs.shape[1]
    proj = sparse.csr_matrix((rng.choice(np.array([-1.0, 1.0], dtype=np.float32), n_cols),
                              (np.arange(n_cols), rng.integers(0, dims, n_cols))),
                             shape=(n_cols, dims))
    dense = np.asarray((vecs @ proj).todense(), dtype=np.float32)
    norms = np.linalg.norm(dense, axis=1, keepdims=True)
    return dense / np.where(norms > 0, norms, 1.0)


def leader_clusters(vecs, threshold: float, progress: Progress | None = None,
                    block_cells: int = 1 << 23) -> LeaderClusters:
    """Leader clusters of rows given in keep-priority order: each flagged row has cosine >=
    threshold to its keeper. Rows are compared in blocks (block x later rows, about
    `block_cells` similarities at a time) with dense products: of the vectors themselves, or
    for sparse vectors of their sketch, whose candidates (within SKETCH_MARGIN) are then
    checked with the exact cosine."""
    if not -1.0 <= threshold <= 1.0:
        raise StudioError(f"semantic dedup: threshold must be a cosine in [-1, 1], got {threshold}")
    n = vecs.shape[0]
    out = LeaderClusters.empty(n)
    cut = threshold - 1e-6  # float32 rounding: identical texts must meet a threshold of 1.0
    exact = sparse.issparse(vecs)
    search = sketch(vecs) if exact else np.asarray(vecs, dtype=np.float32)
    start = 0
    while start < n:
        stop = min(n, start + max(1, block_cells // max(n - start, 1)))
        sims = search[start:stop] @ search[start:].T
        r, c = np.nonzero(np.triu(sims >= cut - (SKETCH_MARGIN if exact else 0.0), k=1))
        v = cosine_sim(vecs, start + r, start + c) if exact else sims[r, c]
        keep = v >= cut
        out.add_block(start, sparse.csr_matrix(
            (np.minimum(v[keep], 1.0).astype(np.float32), (r[keep], c[keep])),
            shape=(stop - start, n - start)))
        start = stop
        if progress:
            progress(start, n)
    return out
