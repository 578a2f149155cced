"""Near-duplicate detection: MinHash signatures and LSH banding, vectorized in numpy.

Everything is columnar: shingle hashes are one flat uint64 array with per-document offsets,
signatures are an (n_docs, num_perm) uint32 matrix, and each LSH band is one uint64 key per
document whose equal runs (after a sort) are the candidate pairs. Candidates are verified by
their signature agreement (the MinHash Jaccard estimate), so reported pairs are real matches,
not just bucket collisions. Reused by decontamination and by evals' contamination check
(`near_duplicates_between`).
"""

from __future__ import annotations

import functools
import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from kernel.errors import StudioError

Progress = Callable[[int, int], None]
# Chinese and Japanese write no spaces between words: a run of Han/kana would be one "word",
# so each of their characters is a token (shingles become character n-grams there).
CJK = ("\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
       "\U00020000-\U0002fa1f")
TOKEN = re.compile(rf"[{CJK}]|[^\W{CJK}]+")
_MASK32 = np.uint64(0xFFFFFFFF)


@dataclass(frozen=True)
class MinHashConfig:
    """MinHash/LSH settings. Defaults suit short instruction data (tens to hundreds of words)."""

    threshold: float = 0.8   # Jaccard similarity at or above which two texts are near-duplicates
    num_perm: int = 128      # signature length; more = better estimate, slower
    ngram: int = 3           # word shingle size
    seed: int = 1            # seeds the hash family, so results are reproducible
    bands: int | None = None  # LSH bands (rows = num_perm // bands); None = chosen for threshold
    chunk_shingles: int = 8192  # shingles hashed per numpy step (~chunk x num_perm x 4 B, in cache)

    def __post_init__(self):
        if not 0.0 < self.threshold <= 1.0:
            raise StudioError(f"near dedup: threshold must be in (0, 1], got {self.threshold}")
        if self.num_perm < 8 or self.ngram < 1:
            raise StudioError("near dedup: num_perm must be >= 8 and ngram >= 1")
        if self.bands is not None and not 1 <= self.bands <= self.num_perm:
            raise StudioError(f"near dedup: bands ({self.bands}) must be in 1..num_perm "
                              f"({self.num_perm})")

    def band_layout(self) -> tuple[int, int]:
        if self.bands:
            return self.bands, self.num_perm // self.bands
        return optimal_bands(self.threshold, self.num_perm)


@functools.lru_cache(maxsize=64)
def optimal_bands(threshold: float, num_perm: int, fn_weight: float = 0.7) -> tuple[int, int]:
    """(bands, rows), bands * rows <= num_perm, minimizing the weighted false positive and
    false negative areas of the LSH S-curve (as datasketch does). Candidates are verified
    afterwards, so misses cost more than extra candidates: false negatives weigh more."""
    xs = np.linspace(0, 1, 401)
    below, above = xs < threshold, xs >= threshold
    best, best_err = (1, num_perm), np.inf
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            p = 1 - (1 - xs ** r) ** b
            fp = np.trapezoid(p[below], xs[below])
            fn = np.trapezoid(1 - p[above], xs[above])
            err = (1 - fn_weight) * fp + fn_weight * fn
            if err < best_err:
                best, best_err = (b, r), err
    return best


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer: spreads bits so sums of hashes become good hashes."""
    x = x.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return x


def shingles(texts: Sequence[str], ngram: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Token n-gram hashes of normalized texts: (flat uint64 hashes, offsets of len n+1).

    Tokens (`TOKEN`) are lowercase words, or single Han/kana characters, hashed with crc32
    (stable across processes); a text shorter than `ngram` tokens is one shingle of all its
    tokens; an empty text gets none."""
    tokens: list[str] = []
    lengths = np.empty(len(texts), dtype=np.int64)
    for i, text in enumerate(texts):
        toks = TOKEN.findall((text or "").lower())
        if 0 < len(toks) < ngram:
            toks = toks + [""] * (ngram - len(toks))
        lengths[i] = len(toks)
        tokens.extend(toks)
    th = np.fromiter((zlib.crc32(t.encode()) for t in tokens), dtype=np.uint64, count=len(tokens))
    tok_off = np.concatenate(([0], np.cumsum(lengths)))
    n_sh = np.maximum(lengths - ngram + 1, 0)
    sh_off = np.concatenate(([0], np.cumsum(n_sh)))
    # shingle k of doc d starts at token tok_off[d] + k
    doc_of = np.repeat(np.arange(len(texts)), n_sh)
    start = tok_off[doc_of] + (np.arange(sh_off[-1]) - sh_off[doc_of])
    acc = np.zeros(start.size, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(ngram):
            acc = acc * np.uint64(0x100000001B3) + _mix64(th[start + j] + np.uint64(j + 1))
    return _mix64(acc), sh_off


def signatures(texts: Sequence[str], cfg: MinHashConfig | None = None,
               progress: Progress | None = None) -> np.ndarray:
    """(n, num_perm) uint32 MinHash signatures; empty texts get all-max rows (match nothing)."""
    cfg = cfg or MinHashConfig()
    sh, off = shingles(texts, cfg.ngram)
    rng = np.random.default_rng(cfg.seed)
    # 32-bit affine permutations of well-mixed 32-bit shingle keys: 4-byte lanes keep each
    # chunk in cache, and the min over a random permutation is what MinHash needs
    a = (rng.integers(1, 2**32, size=cfg.num_perm, dtype=np.uint64) | np.uint64(1)).astype(np.uint32)
    b = rng.integers(0, 2**32, size=cfg.num_perm, dtype=np.uint64).astype(np.uint32)
    x = ((sh ^ (sh >> np.uint64(32))) & _MASK32).astype(np.uint32)
    n = len(texts)
    sig = np.full((n, cfg.num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
    lengths = np.diff(off)
    doc = 0
    while doc < n:
        # take documents until the chunk holds about chunk_shingles shingles
        end = int(np.searchsorted(off, off[doc] + cfg.chunk_shingles, side="right"))
        end = max(end - 1, doc + 1)
        lo, hi = off[doc], off[end]
        if hi > lo:
            with np.errstate(over="ignore"):
                h = x[lo:hi, None] * a[None, :]
                h += b
            nz = np.flatnonzero(lengths[doc:end])
            starts = (off[doc:end][nz] - lo).astype(np.int64)
            sig[doc + nz] = np.minimum.reduceat(h, starts, axis=0)
        doc = end
        if progress:
            progress(doc, n)
    return sig


def candidate_pairs(sig: np.ndarray, bands: int, rows: int, max_gap: int = 64,
                    heads: int = 4) -> np.ndarray:
    """Pairs (i < j) sharing at least one band; (k, 2) int64, unique.

    Within a bucket of size g all pairs are produced when g <= max_gap + 1. In bigger buckets
    (boilerplate) each row is paired with its max_gap predecessors and with the bucket's first
    `heads` rows: rows come in index order within a bucket, so when indices are keep-priority
    positions the likely keepers (the first rows) are paired with every member."""
    n = sig.shape[0]
    empty = np.all(sig == np.iinfo(np.uint32).max, axis=1)
    out = []
    for band in range(bands):
        cols = sig[:, band * rows:(band + 1) * rows].astype(np.uint64)
        key = np.zeros(n, dtype=np.uint64)
        with np.errstate(over="ignore"):
            for j in range(rows):
                key = _mix64(key * np.uint64(0x9E3779B97F4A7C15) + cols[:, j])
        order = np.argsort(key, kind="stable")
        order = order[~empty[order]]
        ks = key[order]
        for gap in range(1, max_gap + 1):
            same = np.flatnonzero(ks[:-gap] == ks[gap:])
            if same.size == 0:
                break
            out.append(np.stack([order[same], order[same + gap]], axis=1))
        new = np.concatenate(([True], ks[1:] != ks[:-1]))
        first = np.maximum.accumulate(np.where(new, np.arange(ks.size), 0))
        far = np.flatnonzero(np.arange(ks.size) - first > max_gap)
        for h in range(min(heads, max_gap)):
            out.append(np.stack([order[first[far] + h], order[far]], axis=1))
    if not out:
        return np.empty((0, 2), dtype=np.int64)
    pairs = np.sort(np.concatenate(out), axis=1).astype(np.int64)
    codes = np.unique(pairs[:, 0] * n + pairs[:, 1])
    return np.stack([codes // n, codes % n], axis=1)


def pair_similarity(sig_a: np.ndarray, sig_b: np.ndarray, pairs: np.ndarray,
                    chunk: int = 100_000) -> np.ndarray:
    """Estimated Jaccard (fraction of equal signature slots) of each pair (i in a, j in b)."""
    sims = np.empty(len(pairs), dtype=np.float32)
    for s in range(0, len(pairs), chunk):
        p = pairs[s:s + chunk]
        sims[s:s + chunk] = (sig_a[p[:, 0]] == sig_b[p[:, 1]]).mean(axis=1)
    return sims


def unique_shingles(texts: Sequence[str], ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """Each text's shingle hashes as a sorted set: (flat uint64 hashes, offsets of len n+1)."""
    sh, off = shingles(texts, ngram)
    doc = np.repeat(np.arange(len(texts)), np.diff(off))
    order = np.lexsort((sh, doc))
    sh, doc = sh[order], doc[order]
    keep = np.ones(sh.size, dtype=bool)
    keep[1:] = (sh[1:] != sh[:-1]) | (doc[1:] != doc[:-1])
    sh, doc = sh[keep], doc[keep]
    return sh, np.concatenate(([0], np.cumsum(np.bincount(doc, minlength=len(texts)))))


def exact_jaccard(sets: tuple[np.ndarray, np.ndarray], pairs: np.ndarray,
                  chunk_items: int = 4_000_000) -> np.ndarray:
    """True Jaccard of shingle sets (from `unique_shingles`) for each pair (i, j), vectorized:
    both sets of a pair are laid out under the pair's id, sorted, and equal neighbours are
    the intersection."""
    sh, off = sets
    sizes = np.diff(off)
    out = np.empty(len(pairs), dtype=np.float32)
    cum = np.cumsum(sizes[pairs[:, 0]] + sizes[pairs[:, 1]])
    start = 0
    while start < len(pairs):
        done = int(cum[start - 1]) if start else 0
        stop = max(start + 1, int(np.searchsorted(cum, done + chunk_items, side="right")))
        p = pairs[start:stop]
        idx = np.concatenate([_ranges(off[p[:, 0]], sizes[p[:, 0]]),
                              _ranges(off[p[:, 1]], sizes[p[:, 1]])])
        pid = np.concatenate([np.repeat(np.arange(len(p)), sizes[p[:, 0]]),
                              np.repeat(np.arange(len(p)), sizes[p[:, 1]])])
        vals = sh[idx]
        order = np.lexsort((vals, pid))
        vals, pid = vals[order], pid[order]
        both = (vals[1:] == vals[:-1]) & (pid[1:] == pid[:-1])
        inter = np.bincount(pid[1:][both], minlength=len(p))
        union = sizes[p[:, 0]] + sizes[p[:, 1]] - inter
        out[start:stop] = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
        start = stop
    return out


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated aranges [s, s + l) for each (s, l)."""
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    offs = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
    return np.arange(total) + offs


def verified_pairs(texts: Sequence[str], cfg: MinHashConfig, sig: np.ndarray,
                   margin: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i < j) whose true Jaccard of shingle sets is >= threshold, and that Jaccard.

    LSH candidates whose MinHash estimate is within `margin` of the threshold (about four
    standard errors at 128 permutations) are checked against their shingle sets, so what
    is reported is the real similarity, not an estimate."""
    bands, rows = cfg.band_layout()
    pairs = candidate_pairs(sig, bands, rows)
    pairs = pairs[pair_similarity(sig, sig, pairs) >= cfg.threshold - margin]
    if len(pairs) == 0:
        return pairs, np.empty(0, dtype=np.float32)
    involved = np.unique(pairs)
    local = np.searchsorted(involved, pairs)
    sims = exact_jaccard(unique_shingles([texts[k] for k in involved], cfg.ngram), local)
    keep = sims >= cfg.threshold
    return pairs[keep], sims[keep]


def near_duplicate_pairs(texts: Sequence[str], cfg: MinHashConfig | None = None,
                         progress: Progress | None = None,
                         sig: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Verified pairs (i < j) with estimated Jaccard >= threshold, and those estimates."""
    cfg = cfg or MinHashConfig()
    sig = signatures(texts, cfg, progress) if sig is None else sig
    bands, rows = cfg.band_layout()
    pairs = candidate_pairs(sig, bands, rows)
    sims = pair_similarity(sig, sig, pairs)
    keep = sims >= cfg.threshold
    return pairs[keep], sims[keep]


def row_text(row: dict | str, field: str = "text") -> str:
    """The text compared for a row: `text` = all message contents, or one canonical field."""
    if isinstance(row, str):
        return row
    if field == "text":
        if row.get("messages"):
            return "\n".join(str(m.get("content") or "") for m in row["messages"])
        return "\n".join(str(row.get(k) or "") for k in ("instruction", "response"))
    return str(row.get(field) or "")


def near_duplicates_between(rows_a: Sequence[dict | str], rows_b: Sequence[dict | str],
                            threshold: float = 0.8, field: str = "text",
                            cfg: MinHashConfig | None = None) -> list[tuple[int, int, float]]:
    """(index in a, index in b, estimated Jaccard) for every cross pair at/above threshold.

    Rows are canonical row dicts or plain strings; `field` picks what is compared."""
    cfg = cfg or MinHashConfig(threshold=threshold)
    if cfg.threshold != threshold:
        cfg = MinHashConfig(threshold=threshold, num_perm=cfg.num_perm, ngram=cfg.ngram,
                            seed=cfg.seed, bands=cfg.bands)
    texts = [row_text(r, field) for r in rows_a] + [row_text(r, field) for r in rows_b]
    na = len(rows_a)
    sig = signatures(texts, cfg)
    bands, rws = cfg.band_layout()
    pairs = candidate_pairs(sig, bands, rws)
    cross = pairs[(pairs[:, 0] < na) & (pairs[:, 1] >= na)]
    sims = pair_similarity(sig, sig, cross)
    keep = sims >= threshold
    return [(int(i), int(j - na), float(s)) for (i, j), s in zip(cross[keep], sims[keep], strict=True)]
