"""All pairs of unit vectors with cosine >= a threshold, without a Python loop over pairs.

Up to `EXACT_MAX` vectors: exact, blocked matrix products over the upper triangle (BLAS does the work,
memory stays at one `BLOCK` x n block). Above: a FAISS inverted-file index (`IndexIVFFlat`, inner
product) and its range search, each vector compared only with the vectors of its `NPROBE` nearest
cells. Near-duplicates (cosine >= ~0.9) are close enough to share a cell; the benchmark
(benchmarks/dupes_bench.py) measures what the approximation misses against the exact search.
"""

from __future__ import annotations

import numpy as np

EXACT_MAX = 20_000
BLOCK = 2048
QUERY_CHUNK = 20_000
NPROBE = 8
TRAIN_PER_LIST = 40
KMEANS_ITERATIONS = 10


def cosine_pairs(vectors: np.ndarray, threshold: float, exact: bool | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, cosine) arrays for every pair i < j with vectors[i] . vectors[j] >= threshold.

    `exact`: None picks by size (exact up to EXACT_MAX vectors), True/False forces one method."""
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    if len(v) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    if exact is None:
        exact = len(v) <= EXACT_MAX
    return _exact_pairs(v, threshold) if exact else _ivf_pairs(v, threshold)


def _exact_pairs(v: np.ndarray, threshold: float):
    out_i, out_j, out_s = [], [], []
    for a in range(0, len(v), BLOCK):
        sims = v[a:a + BLOCK] @ v[a:].T               # this block against itself and everything after
        r, c = np.nonzero(sims >= threshold)
        keep = c > r                                    # upper triangle only: i < j, no self pairs
        r, c = r[keep], c[keep]
        out_i.append(r + a)
        out_j.append(c + a)
        out_s.append(sims[r, c])
    return np.concatenate(out_i).astype(np.int64), np.concatenate(out_j).astype(np.int64), \
        np.concatenate(out_s).astype(np.float32)


def ivf_lists(n: int) -> int:
    """Cells for n vectors: about 4 sqrt(n), a power of two, 16 to 4096."""
    return int(min(4096, max(16, 2 ** round(np.log2(4 * np.sqrt(n))))))


def _ivf_pairs(v: np.ndarray, threshold: float, nprobe: int | None = None):
    import faiss

    n, d = v.shape
    nlist = ivf_lists(n)
    quantizer = faiss.IndexFlatIP(d)
    index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = KMEANS_ITERATIONS  # coarse cells are enough: near-copies share one anyway
    rng = np.random.default_rng(0)
    sample = v[rng.choice(n, min(n, nlist * TRAIN_PER_LIST), replace=False)]
    index.train(sample)
    index.add(v)
    index.nprobe = min(nprobe or NPROBE, nlist)
    out_i, out_j, out_s = [], [], []
    for start in range(0, n, QUERY_CHUNK):
        q = v[start:start + QUERY_CHUNK]
        # faiss keeps inner products strictly above the radius; nudge it so ">= threshold" holds
        lims, sims, ids = index.range_search(q, float(np.nextafter(np.float32(threshold), -np.inf)))
        rows = np.repeat(np.arange(start, start + len(q), dtype=np.int64), np.diff(lims).astype(np.int64))
        ids = ids.astype(np.int64)
        keep = (ids != rows) & (sims >= threshold)
        # a pair may be found from either end (each probes its own cells): keep both, dedupe below
        out_i.append(np.minimum(rows, ids)[keep])
        out_j.append(np.maximum(rows, ids)[keep])
        out_s.append(sims[keep].astype(np.float32))
    i, j, s = np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_s)
    _, first = np.unique(i * n + j, return_index=True)
    return i[first], j[first], s[first]
