"""Greedy leader clustering: every flagged row is within the threshold of the row kept for it.

Connected components over "similar" pairs chain rows together (A~B, B~C puts A and C in one
cluster however far apart they are), so a flagged row can be unrelated to its keeper. Here rows
are visited in keep-priority order (index 0 = the row a keeper policy prefers most); a row not
yet taken becomes a leader (a keeper) and takes every row still free whose similarity to it
is at or above the threshold. Near and semantic dedup share this; they differ only in how they
find the similar pairs (MinHash LSH + exact Jaccard, blocked cosine products).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix


@dataclass
class LeaderClusters:
    """`leader[i]`: index of the keeper of row i (itself for keepers and singletons);
    `similarity[i]`: its similarity to that keeper (1.0 for keepers)."""

    leader: np.ndarray
    similarity: np.ndarray

    @classmethod
    def empty(cls, n: int) -> LeaderClusters:
        return cls(np.full(n, -1, dtype=np.int64), np.ones(n, dtype=np.float32))

    def add_block(self, start: int, neighbours: csr_matrix) -> None:
        """Visit rows start..start+k-1 (all earlier rows already visited). Row r of
        `neighbours` lists row start+r's neighbours as columns offset by `start` (column c is
        row start+c), with their similarity; only entries at/above the threshold are given."""
        n_rows = neighbours.shape[0]
        indptr, cols_all, sims_all = neighbours.indptr, neighbours.indices, neighbours.data
        for r in np.flatnonzero(np.diff(indptr)):
            i = start + int(r)
            if self.leader[i] != -1:
                continue
            self.leader[i] = i
            cols = cols_all[indptr[r]:indptr[r + 1]].astype(np.int64) + start
            sims = sims_all[indptr[r]:indptr[r + 1]]
            take = (cols > i) & (self.leader[cols] == -1)
            self.leader[cols[take]] = i
            self.similarity[cols[take]] = sims[take]
        rows = np.arange(start, start + n_rows)
        free = rows[self.leader[rows] == -1]
        self.leader[free] = free  # no neighbour left: a cluster of one

    def sizes(self) -> np.ndarray:
        return np.bincount(self.leader, minlength=len(self.leader))


def leader_clusters_from_pairs(n: int, pairs: np.ndarray, sims: np.ndarray,
                               threshold: float) -> LeaderClusters:
    """Leader clustering from verified pairs (i, j) with their similarity; indices are
    positions in keep-priority order."""
    out = LeaderClusters.empty(n)
    keep = sims >= threshold
    pairs, sims = pairs[keep], sims[keep]
    lo, hi = np.minimum(pairs[:, 0], pairs[:, 1]), np.maximum(pairs[:, 0], pairs[:, 1])
    _, first = np.unique(lo * n + hi, return_index=True)  # a repeated pair must not add up
    graph = csr_matrix((sims[first].astype(np.float32), (lo[first], hi[first])), shape=(n, n))
    out.add_block(0, graph)
    return out
