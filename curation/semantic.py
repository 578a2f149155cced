"""Semantic near-duplicates: embeddings, cosine similarity in blocks, leader clusters.

Embeddings come from a sentence-transformers model (local path or name) when one is given and
the optional `semantic` extra is installed. Without a model the fallback is TF-IDF (words and
word pairs; Han/kana characters count as words): its cosine is exact and needs no model, and it
is what a reviewer can check by hand. (It replaced a TF-IDF -> 128-d LSA projection whose
cosines ran high for unrelated rows and whose SVD took most of the time.)

Similar rows are found with blocked matrix products: a block of rows (in keep-priority order)
against all later rows, keeping entries at/above the threshold, so memory stays bounded and no
pair list is built; `clustering.LeaderClusters` turns them into clusters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import sparse

from curation.clustering import LeaderClusters
from curation.errors import StudioError

Progress = Callable[[int, int], None]
FALLBACK = "tfidf"


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


def tfidf_vectors(texts: Sequence[str]) -> sparse.csr_matrix:
    from sklearn.feature_extraction.text import TfidfVectorizer

    from curation.near_dedup import TOKEN

    return TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), token_pattern=TOKEN.pattern,
                           max_features=200_000, dtype=np.float32
                           ).fit_transform([t or "" for t in texts]).tocsr()


def cosine_sim(vecs, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Cosine of rows i[k] and j[k] of normalized vectors (dense or sparse)."""
    if sparse.issparse(vecs):
        return np.asarray(vecs[i].multiply(vecs[j]).sum(axis=1)).ravel().astype(np.float32)
    return np.einsum("ij,ij->i", vecs[i], vecs[j]).astype(np.float32)


def leader_clusters(vecs, threshold: float, progress: Progress | None = None,
                    block_cells: int = 1 << 22) -> LeaderClusters:
    """Leader clusters of rows given in keep-priority order: each flagged row has cosine >=
    threshold to its keeper. Rows are compared in blocks (block x later rows, about
    `block_cells` similarities at a time)."""
    if not -1.0 <= threshold <= 1.0:
        raise StudioError(f"semantic dedup: threshold must be a cosine in [-1, 1], got {threshold}")
    n = vecs.shape[0]
    out = LeaderClusters.empty(n)
    cut = threshold - 1e-6  # float32 rounding: identical texts must meet a threshold of 1.0
    start = 0
    while start < n:
        stop = min(n, start + max(1, block_cells // max(n - start, 1)))
        sims = vecs[start:stop] @ vecs[start:].T
        if sparse.issparse(sims):
            sims = sims.tocoo()
            r, c, v = sims.row, sims.col, sims.data
            keep = (v >= cut) & (c > r)
            r, c, v = r[keep], c[keep], v[keep]
        else:
            r, c = np.nonzero(np.triu(sims >= cut, k=1))
            v = sims[r, c]
        out.add_block(start, sparse.csr_matrix((np.minimum(v, 1.0).astype(np.float32), (r, c)),
                                               shape=(stop - start, n - start)))
        start = stop
        if progress:
            progress(start, n)
    return out
