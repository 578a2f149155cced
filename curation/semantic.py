"""Semantic near-duplicates: embeddings + cosine nearest neighbours.

Embeddings come from a sentence-transformers model (local path or name) when one is given and
the optional `semantic` extra is installed; otherwise from scikit-learn TF-IDF reduced with
TruncatedSVD (LSA), which needs no model at all and works offline.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from curation.errors import StudioError

Progress = Callable[[int, int], None]


def embed(texts: Sequence[str], model: str | None = None, dims: int = 128,
          seed: int = 0) -> np.ndarray:
    """L2-normalized embeddings, (n, d) float32."""
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
        vecs = np.asarray(enc.encode(list(texts), normalize_embeddings=True), dtype=np.float32)
        return vecs
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import normalize

    tfidf = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=1,
                            max_features=200_000).fit_transform([t or "" for t in texts])
    k = min(dims, tfidf.shape[1] - 1, tfidf.shape[0] - 1)
    if k < 2:
        dense = tfidf.toarray()
    else:
        dense = TruncatedSVD(n_components=k, random_state=seed).fit_transform(tfidf)
    return normalize(dense).astype(np.float32)


def similar_pairs(vecs: np.ndarray, threshold: float, chunk: int = 2048,
                  progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i < j) with cosine >= threshold: scikit-learn radius neighbours, in chunks."""
    from sklearn.neighbors import NearestNeighbors

    if not -1.0 <= threshold <= 1.0:
        raise StudioError(f"semantic dedup: threshold must be a cosine in [-1, 1], got {threshold}")
    n = len(vecs)
    nn = NearestNeighbors(radius=1.0 - threshold + 1e-6, metric="cosine").fit(vecs)
    found_i, found_j, found_s = [], [], []
    for s in range(0, n, chunk):
        dist, idx = nn.radius_neighbors(vecs[s:s + chunk])
        for k, (d, j) in enumerate(zip(dist, idx, strict=True)):
            keep = j > s + k
            found_i.append(np.full(int(keep.sum()), s + k))
            found_j.append(j[keep])
            found_s.append(1.0 - d[keep])
        if progress:
            progress(min(s + chunk, n), n)
    if not found_i:
        return np.empty((0, 2), dtype=np.int64), np.empty(0, dtype=np.float32)
    pairs = np.stack([np.concatenate(found_i), np.concatenate(found_j)], axis=1).astype(np.int64)
    return pairs, np.concatenate(found_s).astype(np.float32)
