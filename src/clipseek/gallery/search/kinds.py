"""The faiss index kinds behind `VectorIndex`, and all that is specific to one kind: how it is made,
trained and searched (its faiss SearchParameters), how its probe count is chosen and when it drifted.

- "flat": exact inner product (`IndexFlatIP`); skips deleted rows through an ID selector.
- "ivf-pq-sq8" (the approximate default): an inverted file of `nlist` lists (spherical k-means
  centroids); a query scans only the `nprobe` lists nearest to it, their 4-bit PQ fast-scan codes of
  the residuals (2 dimensions per code), and the best `REFINE_CANDIDATES` are re-scored with 8-bit
  scalar-quantized copies (`IndexRefine`): 656 B per 512-d vector (128 code, 512 copy, 8 list id, 8
  row id). `nprobe` is chosen per index by measurement (`choose_nprobe`).
- "pq-sq8": the same codes (of the vectors, not residuals) scanned exhaustively: what a build chooses
  instead when the inverted file would have to probe every list (data without clusters, such as
  random vectors: scanning all codes is then faster than visiting every list).

Fast scan takes no ID selector: the approximate kinds' callers filter deleted rows from results (an
ID selector or an exact scoring of a subset, for filtered search, would go in `search_params`).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

KINDS = ("flat", "ivf-pq-sq8", "pq-sq8")
APPROX_KIND = "ivf-pq-sq8"
APPROX_THRESHOLD = 50_000  # vectors from which the approximate kind is used
MIN_TRAIN = 16             # a 4-bit PQ learns 16 centroids per sub-quantizer
REFINE_CANDIDATES = 1024   # candidates from the 4-bit scan re-scored with the 8-bit vectors, at least
REFINE_SHARE = 5           # an inverted file re-scores at least 1/5 of the codes it scans (dense lists)
NLIST_MAX = 1024           # the k-means and the assignment of every vector cost O(nlist) each
KMEANS_POINTS = 64         # training points per centroid (faiss asks for >= 39)
KMEANS_ITER = 10
PQ_TRAIN = 20_000          # vectors the PQ (16 centroids per sub-quantizer) and SQ8 ranges learn from
HELD_OUT = 10_000          # vectors that set the centroid-distance baseline (not used by k-means)
CALIBRATION_QUERIES = 64
CALIBRATION_RECALL = 0.98  # of the exhaustive scan's top 10 within the probed top 10 + 32
NPROBE_MARGIN = 2          # the measured probe count is doubled: real queries are text, not these
DRIFT_RATIO = 1.5          # new vectors this much farther from their centroid than the baseline...
DRIFT_SHARE = 0.1          # ...once they are this share of the trained count: retrain
GROWTH = 4.0               # or the index holds this many times the vectors it was trained with


def faiss():
    import faiss as _faiss

    return _faiss


def choose_kind(n: int, threshold: int = APPROX_THRESHOLD) -> str:
    return "flat" if n < max(threshold, MIN_TRAIN) else APPROX_KIND


def pq_subquantizers(dim: int) -> int:
    """4-bit PQ with 2 dimensions per code where possible; fast scan needs an even count."""
    m = dim // 2
    while m > 2 and (dim % m or m % 2):
        m -= 1
    return max(m, 2)


def nlist_for(n: int) -> int:
    """Lists for n vectors: the power of two nearest sqrt(n), at most n / 39 (enough k-means points
    per centroid) and NLIST_MAX."""
    if n < 39:
        return 1
    by_sqrt = 2 ** round(float(np.log2(np.sqrt(n))))
    by_points = 2 ** int(np.floor(np.log2(n / 39)))
    return int(max(1, min(by_sqrt, by_points, NLIST_MAX)))


def new_index(kind: str, dim: int, nlist: int = 0):
    """An empty faiss index of `kind` (the approximate ones come untrained)."""
    f = faiss()
    if kind == "flat":
        return f.IndexFlatIP(dim)
    if kind not in KINDS:
        raise ValueError(f"unknown index kind {kind!r} (known: {', '.join(KINDS)})")
    ivf = f"IVF{max(nlist, 1)}," if kind == "ivf-pq-sq8" else ""
    return f.index_factory(dim, f"{ivf}PQ{pq_subquantizers(dim)}x4fs,Refine(SQ8)", f.METRIC_INNER_PRODUCT)


def train(index, kind: str, sample: np.ndarray) -> float:
    """Train an empty approximate index on `sample`. For "ivf-pq-sq8" returns the baseline of the
    drift measure: the mean squared distance to their nearest centroid of sample vectors that
    k-means did not see (0.0 for the other kinds)."""
    if kind != "ivf-pq-sq8":
        index.train(sample)
        return 0.0
    f, ivf = faiss(), faiss().extract_index_ivf(index)
    order = np.random.default_rng(0).permutation(len(sample))
    fit = sample[np.sort(order[:KMEANS_POINTS * ivf.nlist])]
    km = f.Kmeans(index.d, ivf.nlist, niter=KMEANS_ITER, spherical=True, seed=1,
                  max_points_per_centroid=KMEANS_POINTS + 1)
    km.train(fit)
    ivf.quantizer.add(km.centroids)  # a trained quantizer: IndexIVF.train only learns the codes
    index.train(sample[np.sort(order[:PQ_TRAIN])])
    held = order[KMEANS_POINTS * ivf.nlist:][:HELD_OUT]
    return float(centroid_distances(index, sample[np.sort(held)] if len(held) else fit).mean())


def centroid_distances(index, vectors: np.ndarray) -> np.ndarray:
    """Squared distance of each vector to its list's centroid ("ivf-pq-sq8" only)."""
    quantizer = faiss().extract_index_ivf(index).quantizer
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    ip, _ = quantizer.search(x, 1)  # the assignment rule: the largest inner product (unit centroids)
    return np.einsum("ij,ij->i", x, x) - 2 * ip[:, 0] + 1.0


def search_params(kind: str, part, k: int, *, nprobe: int = 0, candidates: int = REFINE_CANDIDATES,
                  sel=None):
    """faiss SearchParameters for a top-k search of one part of `kind`: `sel` (flat only) skips
    positions; an approximate index asks its codes for `candidates` to re-score with SQ8, and an
    inverted file probes `nprobe` lists, or more when fewer cannot hold 2k vectors, and re-scores
    at least a `REFINE_SHARE`th of what they hold (in long lists of near neighbours the 4-bit codes
    alone cannot tell the best apart: at 10M clustered vectors 2,048 of 20,000 left 4% of the top 10
    out, 4,096 none)."""
    f = faiss()
    if kind == "flat":
        return f.SearchParameters(sel=sel) if sel is not None else None
    base = None
    if kind == "ivf-pq-sq8":
        nlist = f.extract_index_ivf(part).nlist
        enough = -(-2 * k * nlist // max(int(part.ntotal), 1))
        probes = int(min(nlist, max(nprobe, enough, 1)))
        base = f.SearchParametersIVF(nprobe=probes)
        candidates = max(candidates, probes * int(part.ntotal) // nlist // REFINE_SHARE)
    return f.IndexRefineSearchParameters(k_factor=float(max(2.0, candidates / k)), base_index_params=base)


def pseudo_queries(sample: np.ndarray, n: int = CALIBRATION_QUERIES) -> np.ndarray:
    """n unit queries that resemble the data without being in it: sample vectors (drawn with seed 0)
    plus as much Gaussian noise as the data has around its mean, shaped by its covariance. A query
    near one point and a few of its neighbours, as a text query lies near the images it describes;
    pure noise (a random direction) would make every query equally far from every list."""
    rng = np.random.default_rng(0)
    x = np.asarray(sample[:HELD_OUT], dtype=np.float64)
    mean = x.mean(0)
    cov = (x - mean).T @ (x - mean) / max(len(x) - 1, 1) + 1e-6 * np.eye(x.shape[1])
    q = x[rng.integers(0, len(x), n)] + rng.standard_normal((n, x.shape[1])) @ np.linalg.cholesky(cov).T
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def choose_nprobe(search: Callable[[np.ndarray, int, int], np.ndarray], queries: np.ndarray, nlist: int) -> int:
    """The probe count, by measurement: the fewest (doubling from 1) whose top 42 hold
    `CALIBRATION_RECALL` of the top 10 of all lists for `queries`, times `NPROBE_MARGIN`, at most
    nlist. `search(queries, k, nprobe)` returns ids."""
    truth = [set(row) for row in search(queries, 10, nlist).tolist()]
    nprobe = 1
    while nprobe < nlist:
        got = [set(row) for row in search(queries, 42, nprobe).tolist()]
        if np.mean([len(t & g) / max(len(t), 1) for t, g in zip(truth, got)]) >= CALIBRATION_RECALL:
            break
        nprobe *= 2
    return int(min(nlist, nprobe * NPROBE_MARGIN))


def drifted(state) -> str:
    """Why an approximate index should be trained (built) again ("" if it should not): its vectors
    grew past GROWTH times the trained count (an inverted file's lists too long; the kind chosen for
    fewer vectors), or, for an inverted file, the vectors added since training are on average
    DRIFT_RATIO times farther from their centroids than the baseline (the data moved)."""
    if state.kind == "flat" or not state.trained:
        return ""
    added = state.count - state.trained
    if state.count > GROWTH * state.trained:
        return f"grew from {state.trained:,} to {state.count:,} vectors"
    if state.kind == "ivf-pq-sq8" and added >= max(1, DRIFT_SHARE * state.trained) and state.base_distance > 0:
        ratio = state.added_distance / added / state.base_distance
        if ratio > DRIFT_RATIO:
            return f"{added:,} new vectors are {ratio:.2f}x farther from their centroids than the trained ones"
    return ""
