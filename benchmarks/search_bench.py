"""Vector search speed, memory and recall: clipseek.index.VectorIndex on random unit vectors (dim 512).

For each size: build time, resident memory of the index (RSS growth while building), p50/p99 latency
of the vector search alone (one query at a time) and end to end from a text query (full-size ViT-B/32
text tower, random weights, padded to the longest prompt), recall@10 against exact search (numpy),
k=1,000 latency, and the time to add 1,000 vectors to the built index (no rebuild). Exact
`IndexFlatIP` (brute force, the baseline) is timed in the same process for comparison.

    python benchmarks/search_bench.py                      # 100k and 1M
    python benchmarks/search_bench.py --quick              # 20k and 100k
    python benchmarks/search_bench.py --sizes 1000000 --ef 64,128,256
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from _common import QUERIES, Timer, build_vit_b32, rss_mb


def random_unit(n: int, d: int, seed: int, chunk: int = 100_000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((n, d), np.float32)
    for i in range(0, n, chunk):
        v = rng.standard_normal((min(chunk, n - i), d), dtype=np.float32)
        out[i:i + len(v)] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def clustered_unit(n: int, d: int, seed: int, centers: int = 1000, spread: float = 0.5) -> np.ndarray:
    """Unit vectors around random centres: structured like real embeddings (random data is the
    worst case for any approximate index: every point is almost equally far from every other)."""
    rng = np.random.default_rng(seed)
    c = random_unit(centers, d, seed=12345)
    out = np.empty((n, d), np.float32)
    for i in range(0, n, 100_000):
        m = min(100_000, n - i)
        v = c[rng.integers(0, centers, m)] + spread * random_unit(m, d, seed=seed + i + 1)
        out[i:i + m] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def latencies(fn, queries) -> np.ndarray:
    out = []
    for q in queries:
        t0 = time.perf_counter()
        fn(q)
        out.append(time.perf_counter() - t0)
    return np.array(out) * 1000


def exact_top(vecs: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    out = []
    for i in range(0, len(queries), 50):
        s = queries[i:i + 50] @ vecs.T
        top = np.argpartition(-s, k, axis=1)[:, :k]
        out.append(top)
    return np.concatenate(out)


def rerank(vi, vecs, q, k=10, extra=32):
    ids = vi.search(q, k + extra)[1][0]
    ids = ids[ids >= 0]
    scores = vecs[ids - 1] @ q
    return ids[np.argsort(-scores)[:k]]


def bench_size(n: int, d: int, efs: list[int], n_queries: int, encoder, data: str = "random") -> None:
    from clipseek.index import VectorIndex

    make = random_unit if data == "random" else clustered_unit
    vecs = make(n, d, seed=n)
    ids = np.arange(1, n + 1, dtype=np.int64)
    queries = make(n_queries, d, seed=1)
    truth = exact_top(vecs, queries, 10) + 1  # ids are positions + 1
    rss0 = rss_mb()
    with Timer() as t:
        vi = VectorIndex.build(ids, vecs)
    mem = rss_mb() - rss0
    build_s = t.s
    print(f"\n== {n:,} {data} vectors, dim {d}: index {vi.state.kind}, build {t.s:.1f} s, "
          f"index memory {mem:.0f} MiB (RSS growth)")
    for ef in efs:
        vi.set_ef_search(ef)
        got = np.stack([vi.search(q, 10)[1][0] for q in queries])
        recall = np.mean([len(set(g) & set(tr)) / 10 for g, tr in zip(got, truth)])
        lat = latencies(lambda q: vi.search(q, 10), queries)
        rr = [rerank(vi, vecs, q) for q in queries]  # as Gallery.search: 2k candidates, exact re-rank
        recall_rr = np.mean([len(set(g) & set(tr)) / 10 for g, tr in zip(rr, truth)])
        lat_rr = latencies(lambda q: rerank(vi, vecs, q), queries)
        print(f"  efSearch {ef:4d}: recall@10 {recall:.3f}  vector search p50 {np.percentile(lat, 50):6.2f} ms"
              f"  p99 {np.percentile(lat, 99):6.2f} ms | with exact re-rank of 42: recall@10 {recall_rr:.3f}"
              f"  p50 {np.percentile(lat_rr, 50):6.2f} ms  p99 {np.percentile(lat_rr, 99):6.2f} ms")
    from clipseek.index import HNSW_EF_SEARCH

    vi.set_ef_search(HNSW_EF_SEARCH)
    lat = latencies(lambda q: vi.search(q, 1000), queries[:50])
    print(f"  k=1000 (efSearch>=k): p50 {np.percentile(lat, 50):.1f} ms  p99 {np.percentile(lat, 99):.1f} ms")
    if encoder is not None:
        texts = [QUERIES[i % len(QUERIES)] for i in range(n_queries)]
        lat = latencies(lambda t: vi.search(encoder.encode_texts([t])[0], 10), texts)
        lat_text = latencies(lambda t: encoder.encode_texts([t]), texts)
        print(f"  end to end text query (efSearch {HNSW_EF_SEARCH}): p50 {np.percentile(lat, 50):.1f} ms  "
              f"p99 {np.percentile(lat, 99):.1f} ms  (text encoding alone p50 {np.percentile(lat_text, 50):.1f} ms)")
    extra = random_unit(1000, d, seed=7)
    with Timer() as ta:
        vi.add(np.arange(n + 1, n + 1001, dtype=np.int64), extra)
    print(f"  add 1,000 vectors in place (no rebuild): {ta.s * 1000:.0f} ms, vs full build {build_s:.1f} s; "
          f"ntotal {vi.ntotal:,}")
    del vi
    import faiss

    flat = faiss.IndexFlatIP(d)
    flat.add(vecs)
    lat = latencies(lambda q: flat.search(q[None, :], 10), queries[:30])
    print(f"  baseline exact IndexFlatIP: p50 {np.percentile(lat, 50):.1f} ms per query "
          f"(memory {vecs.nbytes / 2**20:.0f} MiB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--quick", action="store_true", help="sizes 20k and 100k")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--ef", default="64,128,256,512", help="efSearch values to sweep")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--data", choices=["random", "clustered"], default="random")
    ap.add_argument("--torch-threads", type=int, default=None, help="torch threads for the text tower")
    ap.add_argument("--no-text", action="store_true", help="skip the text tower (end-to-end) part")
    ap.add_argument("--work-dir", default=os.path.join(tempfile.gettempdir(), "clipseek-bench"))
    args = ap.parse_args()
    sizes = [20_000, 100_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    encoder = None
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    if not args.no_text:
        from clipseek import load_model

        encoder = load_model(build_vit_b32(os.path.join(args.work_dir, "vit-b32-random")), device="cpu",
                             dtype="fp32")
        encoder.encode_texts(QUERIES[:2])  # warm-up
    import faiss

    print(f"faiss {faiss.__version__}, threads {faiss.omp_get_max_threads()}; {args.queries} random unit queries")
    for n in sizes:
        bench_size(n, args.dim, [int(e) for e in args.ef.split(",")], args.queries, encoder, args.data)


if __name__ == "__main__":
    main()
