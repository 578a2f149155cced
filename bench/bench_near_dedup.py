"""Near-dup benchmark: our numpy MinHash LSH vs datasketch MinHashLSH on the same data.

Generates random documents plus planted near-duplicate families (a few word edits each), so
the true pairs (exact Jaccard of word 3-gram sets >= threshold) are known. Both methods use
the same shingles, num_perm and threshold; datasketch reports its LSH candidates as usual
(and, for reference, candidates verified with its own Jaccard estimate).

    .venv/bin/python bench/bench_near_dedup.py --docs 20000 --threshold 0.7
Goal (issue 2): at least datasketch's F1 and 3x its throughput on 2 cores.
"""

from __future__ import annotations

import argparse
import itertools
import random
import re
import time

from curation.near_dedup import MinHashConfig, near_duplicate_pairs, signatures, verified_pairs

WORD = re.compile(r"\w+")


def generate(n_docs: int, seed: int, words: int = 60, vocab: int = 5000,
             family_share: float = 0.2) -> tuple[list[str], list[int]]:
    """Documents and their family id (variants of one base share it)."""
    rng = random.Random(seed)
    lexicon = [f"w{i}" for i in range(vocab)]
    texts, family = [], []
    fam = 0
    while len(texts) < n_docs:
        base = [rng.choice(lexicon) for _ in range(words)]
        texts.append(" ".join(base))
        family.append(fam)
        if rng.random() < family_share:
            for _ in range(rng.randint(1, 3)):
                toks = list(base)
                for _ in range(rng.randint(1, 6)):  # 1-6 edits: Jaccard from ~0.95 to ~0.6
                    toks[rng.randrange(words)] = rng.choice(lexicon)
                texts.append(" ".join(toks))
                family.append(fam)
        fam += 1
    return texts[:n_docs], family[:n_docs]


def shingle_set(text: str, n: int = 3) -> set[str]:
    toks = WORD.findall(text.lower())
    return {" ".join(toks[i:i + n]) for i in range(max(len(toks) - n + 1, 1))}


def true_pairs(texts: list[str], family: list[int], threshold: float) -> set[tuple[int, int]]:
    members: dict[int, list[int]] = {}
    for i, f in enumerate(family):
        members.setdefault(f, []).append(i)
    sets = {}
    out = set()
    for group in members.values():
        for i, j in itertools.combinations(group, 2):
            a = sets.setdefault(i, shingle_set(texts[i]))
            b = sets.setdefault(j, shingle_set(texts[j]))
            if len(a & b) / len(a | b) >= threshold:
                out.add((i, j))
    return out


def prf(found: set, truth: set) -> tuple[float, float, float]:
    tp = len(found & truth)
    p = tp / len(found) if found else 1.0
    r = tp / len(truth) if truth else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def run_datasketch(texts: list[str], threshold: float, num_perm: int):
    from datasketch import MinHash, MinHashLSH

    t0 = time.perf_counter()
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    hashes = []
    for i, text in enumerate(texts):
        m = MinHash(num_perm=num_perm, seed=1)
        m.update_batch([s.encode() for s in shingle_set(text)])
        lsh.insert(i, m)
        hashes.append(m)
    cand = set()
    for i, m in enumerate(hashes):
        for j in lsh.query(m):
            if j != i:
                cand.add((min(i, j), max(i, j)))
    elapsed = time.perf_counter() - t0
    verified = {(i, j) for i, j in cand if hashes[i].jaccard(hashes[j]) >= threshold}
    return cand, verified, elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=20000)
    ap.add_argument("--threshold", type=float, default=0.7)
    ap.add_argument("--num-perm", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    texts, family = generate(args.docs, args.seed)
    truth = true_pairs(texts, family, args.threshold)
    print(f"docs={len(texts)} true pairs (Jaccard >= {args.threshold})={len(truth)} "
          f"num_perm={args.num_perm}")

    cfg = MinHashConfig(threshold=args.threshold, num_perm=args.num_perm)
    t0 = time.perf_counter()
    pairs, _ = near_duplicate_pairs(texts, cfg)
    ours_s = time.perf_counter() - t0
    ours = {tuple(p) for p in pairs.tolist()}

    t0 = time.perf_counter()
    exact, _ = verified_pairs(texts, cfg, signatures(texts, cfg))  # what `studio dedup` uses
    exact_s = time.perf_counter() - t0
    exact = {tuple(p) for p in exact.tolist()}

    ds_cand, ds_ver, ds_s = run_datasketch(texts, args.threshold, args.num_perm)

    rows = [("ours (numpy LSH, verified)", ours, ours_s),
            ("ours + exact Jaccard check", exact, exact_s),
            ("datasketch MinHashLSH", ds_cand, ds_s),
            ("datasketch + verify", ds_ver, ds_s)]
    print(f"{'method':<28} {'seconds':>8} {'docs/s':>9} {'pairs':>7} {'prec':>6} {'recall':>6} "
          f"{'F1':>6}")
    for name, found, secs in rows:
        p, r, f1 = prf(found, truth)
        print(f"{name:<28} {secs:>8.2f} {len(texts) / secs:>9.0f} {len(found):>7} {p:>6.3f} "
              f"{r:>6.3f} {f1:>6.3f}")
    f_ours, f_ds = prf(ours, truth)[2], prf(ds_cand, truth)[2]
    print(f"throughput ratio ours/datasketch: {ds_s / ours_s:.1f}x (goal >= 3x); "
          f"F1 ours - datasketch: {f_ours - f_ds:+.3f} (goal >= 0); bands x rows = "
          f"{cfg.band_layout()}")


if __name__ == "__main__":
    main()
