"""Vector search speed, memory and recall: clipseek.gallery.search.vector_index.VectorIndex on random unit vectors
(dim 512).

For each size: build time (wall and CPU: on a shared machine the wall clock also counts other jobs),
resident memory of the index (RSS growth while building), its size on disk and per vector, the probe
count the index chose by measurement, and for a sweep of probe counts (inverted file) or candidate
counts (exhaustive scan): recall@10 against exact search (numpy) before and after the gallery's exact
re-rank of 42 candidates, p50/p99 latency of the vector search alone (one query at a time); k=1,000
latency; end to end from a text query (full-size ViT-B/32 text tower, random weights, torch and ONNX
Runtime, each fp32 and with the text tower quantized to int8); adding 1,000 vectors (no rebuild) and the drift figure
they give.
In the same process, for comparison: the former default (an exhaustive 4-bit scan, "pq-sq8") and
exact `IndexFlatIP` (brute force).

Sizes above --stream-above are never held in memory: vectors are generated in chunks (twice: the
training sample, then the adds) and added straight to a VectorIndex (no SQLite store); recall is
computed in one more pass over the chunks; no text part.

Filtered rows (issue 18): the k=10 search as the gallery runs it (k + 32 candidates re-ranked by exact
cosine) among a random 1%, 10% and 50% of the rows, with the strategy VectorIndex picks and with each
forced (the allowed rows scored alone from the 8-bit codes / the fast scan over-fetched and filtered),
against the unfiltered query; recall@10 is against brute force over the same allowed rows. And a
3-term arithmetic query (1 x a + 0.5 x b - 0.5 x c, combined, then searched), end to end with the
text tower when it is loaded (the three texts in one forward).

    python benchmarks/search_bench.py                      # 100k and 1M
    python benchmarks/search_bench.py --quick              # 20k and 100k
    python benchmarks/search_bench.py --sizes 1000000 --nprobe 64,256,1024 --no-text
    python benchmarks/search_bench.py --sizes 10000000 --no-baseline   # streamed
    python benchmarks/search_bench.py --data clustered --kind hnsw-sq8 --sizes 100000 --effort 64,128
    python benchmarks/search_bench.py --sizes 1000000 --only filtered --no-text --faiss-threads 1
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
from _common import QUERIES, Timer, build_vit_b32, load_avg, peak_rss_mb, rss_mb


def random_unit(n: int, d: int, seed: int, chunk: int = 100_000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((n, d), np.float32)
    for i in range(0, n, chunk):
        v = rng.standard_normal((min(chunk, n - i), d), dtype=np.float32)
        out[i:i + len(v)] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def unit_chunks(n: int, d: int, seed: int, data: str, chunk: int = 100_000):
    """A callable yielding (ids, vectors) of n unit vectors (as random_unit or clustered_unit makes
    them), chunk by chunk, the same each call."""
    centers = random_unit(1000, d, seed=12345)

    def chunks():
        for c, i in enumerate(range(0, n, chunk)):
            rng = np.random.default_rng([seed, c])
            v = rng.standard_normal((min(chunk, n - i), d), dtype=np.float32)
            if data == "clustered":
                v = centers[rng.integers(0, len(centers), len(v))] + 0.5 * v / np.linalg.norm(v, axis=1, keepdims=True)
            yield np.arange(i + 1, i + 1 + len(v), dtype=np.int64), v / np.linalg.norm(v, axis=1, keepdims=True)
    return chunks


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


HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128


class HnswSQ8:
    """The graph index the gallery does not use (kept here for comparison): faiss HNSW over 8-bit
    scalar-quantized vectors, with the few members of VectorIndex this benchmark calls."""

    kind = "hnsw-sq8"

    def __init__(self, ids: np.ndarray, vecs: np.ndarray, m: int = HNSW_M,
                 ef_construction: int = HNSW_EF_CONSTRUCTION):
        import faiss

        self.index = faiss.IndexHNSWSQ(vecs.shape[1], faiss.ScalarQuantizer.QT_8bit, m,
                                       faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = ef_construction
        rng = np.random.default_rng(0)
        self.index.train(vecs[rng.choice(len(vecs), min(len(vecs), 100_000), replace=False)])
        self.ids = np.zeros(0, np.int64)
        self.ef_search = HNSW_EF_SEARCH
        self.add(ids, vecs)

    def add(self, ids: np.ndarray, vecs: np.ndarray) -> None:
        self.index.add(np.ascontiguousarray(vecs, dtype=np.float32))
        self.ids = np.concatenate([self.ids, np.asarray(ids, np.int64)])

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        self.index.hnsw.efSearch = max(self.ef_search, k)  # each query uses max(ef, k)
        scores, pos = self.index.search(np.ascontiguousarray(np.atleast_2d(q), dtype=np.float32), k)
        return scores, np.where(pos >= 0, self.ids[np.maximum(pos, 0)], -1)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def save(self, path: str) -> None:
        import faiss

        faiss.write_index(self.index, path)


def latencies(fn, queries, cpu: list | None = None) -> np.ndarray:
    """Wall ms per call; with `cpu`, also appends each call's CPU ms (all threads of this process:
    the work itself, which other jobs on a shared machine do not inflate as they do the wall time)."""
    out = []
    for q in queries:
        t0, c0 = time.perf_counter(), time.process_time()
        fn(q)
        out.append(time.perf_counter() - t0)
        if cpu is not None:
            cpu.append((time.process_time() - c0) * 1000)
    return np.array(out) * 1000


def exact_top(vecs: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    out = []
    for i in range(0, len(queries), 50):
        s = queries[i:i + 50] @ vecs.T
        top = np.argpartition(-s, k, axis=1)[:, :k]
        out.append(top)
    return np.concatenate(out)


def rerank(vi, vecs, q, k=10, extra=32):
    """As Gallery.search_vector: k + 32 candidates from the index, re-ranked by exact cosine
    (the gallery reads those rows' float32 vectors from SQLite; here from the array)."""
    ids = vi.search(q, k + extra)[1][0]
    ids = ids[ids >= 0]
    scores = vecs[ids - 1] @ q
    return ids[np.argsort(-scores)[:k]]


def recall_at_10(got, truth) -> float:
    return float(np.mean([len(set(g) & set(tr)) / 10 for g, tr in zip(got, truth)]))


def disk_mb(path: str) -> float:
    d, base = os.path.dirname(path), os.path.basename(path)
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d) if f.startswith(base)) / 2**20


def p(lat: np.ndarray, q: int) -> float:
    return float(np.percentile(lat, q))


def sweep_values(vi, args) -> tuple[str, list[int], int]:
    """(name, values, default) of the knob to sweep: probes (inverted file), candidates, efSearch."""
    if isinstance(vi, HnswSQ8):
        return "efSearch", [int(e) for e in args.effort.split(",")], HNSW_EF_SEARCH
    if vi.state.kind == "ivf-pq-sq8":
        chosen, nlist = vi.state.nprobe, vi.state.nlist
        values = [int(v) for v in args.nprobe.split(",")] if args.nprobe else \
            sorted({max(1, chosen // 4), max(1, chosen // 2), chosen, min(nlist, 2 * chosen)})
        return "nprobe", values, chosen
    import clipseek.gallery.search.vector_index as cindex

    return "candidates", [int(e) for e in args.effort.split(",")], cindex.REFINE_CANDIDATES


def rerank_allowed(vi, vecs, q, allowed, k=10, extra=32):
    """As Gallery.search_vector with a filter: k + 32 candidates among the allowed rows, re-ranked."""
    ids = vi.search(q, k + extra, allowed=allowed)[1][0]
    ids = ids[ids >= 0]
    return ids[np.argsort(-(vecs[ids - 1] @ q))[:k]]


def bench_filtered(vi, vecs: np.ndarray, queries: np.ndarray, truth: np.ndarray, encoders: dict,
                   fractions=(0.01, 0.1, 0.5)) -> None:
    import clipseek.gallery.search.vector_index as cindex
    from clipseek.gallery.query import combine

    n = len(vecs)
    base = latencies(lambda q: rerank(vi, vecs, q), queries)
    got = [rerank(vi, vecs, q) for q in queries]
    print(f"  unfiltered (k 10 + 32 re-ranked): p50 {np.percentile(base, 50):6.2f} ms  p99 "
          f"{np.percentile(base, 99):6.2f} ms  recall@10 {recall_at_10(got, truth):.3f}")
    default = cindex.SCAN_FACTOR
    for frac in fractions:
        allowed = np.sort(np.random.default_rng(int(frac * 1000)).choice(n, int(frac * n), replace=False)) + 1
        want = allowed[exact_top(vecs[allowed - 1], queries, 10)]
        for name, scan in (("picked", default), ("scan alone", 10 ** 18), ("over-fetch", 0)):
            cindex.SCAN_FACTOR = scan
            lat = latencies(lambda q, allowed=allowed: rerank_allowed(vi, vecs, q, allowed), queries)
            got = [rerank_allowed(vi, vecs, q, allowed) for q in queries]
            print(f"  filter passing {frac:4.0%} ({name:10s}): p50 {np.percentile(lat, 50):6.2f} ms  p99 "
                  f"{np.percentile(lat, 99):6.2f} ms  recall@10 {recall_at_10(got, want):.3f}  "
                  f"p50 {np.percentile(lat, 50) / np.percentile(base, 50):.2f}x unfiltered")
        cindex.SCAN_FACTOR = default
    parts = [queries, np.roll(queries, 1, axis=0), np.roll(queries, 2, axis=0)]
    mixed = np.stack([combine([1.0, 0.5, -0.5], np.stack([a, b, c])) for a, b, c in zip(*parts)])
    lat = latencies(lambda i: rerank(vi, vecs, combine([1.0, 0.5, -0.5], np.stack([p[i] for p in parts]))),
                    range(len(queries)))
    got = [rerank(vi, vecs, q) for q in mixed]
    print(f"  3-term arithmetic query (vectors given): p50 {np.percentile(lat, 50):6.2f} ms  p99 "
          f"{np.percentile(lat, 99):6.2f} ms  recall@10 {recall_at_10(got, exact_top(vecs, mixed, 10) + 1):.3f}")
    for name, enc in encoders.items():
        texts = [QUERIES[i % len(QUERIES)] for i in range(len(queries))]
        one = latencies(lambda t, enc=enc: rerank(vi, vecs, enc.encode_texts([t])[0]), texts)
        three = latencies(lambda t, enc=enc: rerank(vi, vecs, combine([1.0, 0.5, -0.5], enc.encode_texts(
            [t, "at night", "a city"]))), texts)
        print(f"  end to end, text tower {name}: 1 term p50 {np.percentile(one, 50):.1f} ms, 3 terms (one "
              f"forward) p50 {np.percentile(three, 50):.1f} ms p99 {np.percentile(three, 99):.1f} ms "
              f"({np.percentile(three, 50) / np.percentile(one, 50):.2f}x)")


def set_knob(vi, name: str, value: int) -> None:
    if name == "efSearch":
        vi.ef_search = value
    elif name == "nprobe":
        vi.state.nprobe = value
    else:
        vi.refine_candidates = value


def describe(vi, n: int, data: str, d: int, t, mem: float, disk: float) -> str:
    if isinstance(vi, HnswSQ8):
        kind = f"{vi.kind} (1 part)"
    else:
        s = vi.state
        kind = f"{s.kind} ({len(vi.parts)} parts" + (
            f", {s.nlist} lists, {s.nprobe} probed (chosen by measurement))" if s.nlist else ")")
    return (f"\n== {n:,} {data} vectors, dim {d}: index {kind}, build {t.s:.1f} s wall, {t.cpu:.1f} s CPU "
            f"(load average {load_avg()}), memory {mem:.0f} MiB (RSS growth while building), {disk:.0f} MiB "
            f"on disk = {disk * 2**20 / n:.0f} B per vector")


def drift_line(vi, n_added: int) -> str:
    from clipseek.gallery.search.kinds import DRIFT_RATIO, drifted

    s = vi.state
    if s.kind != "ivf-pq-sq8":
        return ""
    ratio = s.added_distance / max(n_added, 1) / s.base_distance
    return (f"; their mean squared distance to a centroid is {ratio:.2f}x the trained one (retrain above "
            f"{DRIFT_RATIO}x once 10% are new): {drifted(s) or 'no retraining'}")


def bench_size(n: int, d: int, args, encoders: dict) -> None:
    from clipseek.gallery.search.vector_index import VectorIndex

    make = random_unit if args.data == "random" else clustered_unit
    vecs = make(n, d, seed=n)
    ids = np.arange(1, n + 1, dtype=np.int64)
    queries = make(args.queries, d, seed=1)
    truth = exact_top(vecs, queries, 10) + 1  # ids are positions + 1
    rss0 = rss_mb()
    with Timer() as t:
        vi = HnswSQ8(ids, vecs) if args.kind == HnswSQ8.kind else VectorIndex.build(ids, vecs, kind=args.kind)
    mem = rss_mb() - rss0
    path = os.path.join(args.work_dir, f"bench-{n}.faiss")
    vi.save(path)
    print(describe(vi, n, args.data, d, t, mem, disk_mb(path)))
    if args.only == "filtered":
        bench_filtered(vi, vecs, queries, truth, encoders)
        vi.close()
        return
    name, values, default = sweep_values(vi, args)
    for value in values:
        set_knob(vi, name, value)
        got = np.stack([vi.search(q, 10)[1][0] for q in queries])
        cpu = []
        lat = latencies(lambda q: vi.search(q, 42), queries, cpu)
        rr = [rerank(vi, vecs, q) for q in queries]
        lat_rr = latencies(lambda q: rerank(vi, vecs, q), queries)
        print(f"  {name} {value:5d}{' (default)' if value == default else '':10s}: recall@10 "
              f"{recall_at_10(got, truth):.3f}  search (k=42) p50 {p(lat, 50):6.2f} ms  p99 {p(lat, 99):6.2f} ms"
              f"  CPU p50 {p(np.array(cpu), 50):5.2f} ms | + exact re-rank of 42 (as the gallery): recall@10 "
              f"{recall_at_10(rr, truth):.3f}  p50 {p(lat_rr, 50):6.2f} ms  p99 {p(lat_rr, 99):6.2f} ms")
    set_knob(vi, name, default)
    lat = latencies(lambda q: vi.search(q, 1000), queries[:50])
    print(f"  k=1000: p50 {p(lat, 50):.1f} ms  p99 {p(lat, 99):.1f} ms")
    text_part(vi, vecs, encoders, args)
    extra = make(1000, d, seed=7)
    with Timer() as ta:
        vi.add(np.arange(n + 1, n + 1001, dtype=np.int64), extra)
    hit = np.mean([vi.search(v, 1)[1][0, 0] == n + 1 + i for i, v in enumerate(extra[:100])])
    print(f"  add 1,000 vectors in place (no rebuild): {ta.s * 1000:.0f} ms vs full build {t.s:.1f} s; "
          f"each of 100 added vectors is its own top hit: {hit:.2f}"
          f"{'' if isinstance(vi, HnswSQ8) else drift_line(vi, 1000)}")
    chosen = getattr(vi, "state", None) and vi.state.kind
    if not isinstance(vi, HnswSQ8):
        vi.close()
    vi = None  # frees the index before the baselines
    if args.baseline and n >= 50_000 and chosen != "pq-sq8":
        baseline_pq(ids, vecs, queries, truth)
    import faiss

    flat = faiss.IndexFlatIP(d)
    flat.add(vecs)
    lat = latencies(lambda q: flat.search(q[None, :], 10), queries[:30])
    print(f"  baseline exact IndexFlatIP (same process): p50 {p(lat, 50):.1f} ms per query "
          f"(memory {vecs.nbytes / 2**20:.0f} MiB)")


def text_part(vi, vecs, encoders: dict, args) -> None:
    texts = [QUERIES[i % len(QUERIES)] + ("" if i < len(QUERIES) else f" {i}") for i in range(args.queries)]
    for name, enc in encoders.items():
        cpu_text, cpu = [], []
        lat_text = latencies(lambda t, enc=enc: enc.encode_texts([t]), texts, cpu_text)
        lat = latencies(lambda t, enc=enc: rerank(vi, vecs, enc.encode_texts([t])[0]), texts, cpu)
        print(f"  end to end text query, text tower {name}: p50 {p(lat, 50):.1f} ms  p99 {p(lat, 99):.1f} ms  "
              f"CPU p50 {p(np.array(cpu), 50):.1f} ms (text encoding alone p50 {p(lat_text, 50):.1f} ms, "
              f"CPU {p(np.array(cpu_text), 50):.1f} ms)")
    names = list(encoders)
    if len(names) > 1:
        a = encoders[names[0]].encode_texts(texts)
        ta = exact_top(vecs, a, 10)
        for name in names[1:]:
            b = encoders[name].encode_texts(texts)
            cos = (a * b).sum(1)
            print(f"  text vectors {name} vs {names[0]}: cosine min {cos.min():.4f} mean {cos.mean():.4f}; exact "
                  f"top-10 overlap on these {args.data} vectors {recall_at_10(exact_top(vecs, b, 10), ta):.3f}")


def baseline_pq(ids, vecs, queries, truth) -> None:
    """The former default, an exhaustive 4-bit scan of every code, built and timed in this process."""
    from clipseek.gallery.search.vector_index import VectorIndex

    with Timer() as t:
        vi = VectorIndex.build(ids, vecs, kind="pq-sq8")
    rr = [rerank(vi, vecs, q) for q in queries]
    cpu = []
    lat = latencies(lambda q: vi.search(q, 42), queries, cpu)
    print(f"  baseline pq-sq8 (exhaustive 4-bit scan, the former default; same process): build {t.s:.1f} s "
          f"wall {t.cpu:.1f} s CPU; recall@10 after re-rank {recall_at_10(rr, truth):.3f}; search (k=42) p50 "
          f"{p(lat, 50):.2f} ms  p99 {p(lat, 99):.2f} ms  CPU p50 {p(np.array(cpu), 50):.2f} ms")
    vi.close()


def bench_streamed(n: int, d: int, args) -> None:
    """n vectors never held at once: built from chunks, recall from one more pass over them."""
    from clipseek.gallery.search.vector_index import VectorIndex

    chunks = unit_chunks(n, d, n, args.data)
    queries = (random_unit if args.data == "random" else clustered_unit)(args.queries, d, seed=1)
    path = os.path.join(args.work_dir, f"bench-{n}-{args.data}.faiss")
    if args.reuse and VectorIndex.load(path) is not None:
        vi = VectorIndex.load(path)
        print(f"\n== {n:,} {args.data} (streamed) vectors: index {vi.state.kind} loaded from {path} (built by an "
              f"earlier run: no build figures); RSS {rss_mb():.0f} MiB")
    else:
        rss0 = rss_mb()
        with Timer() as t:
            vi = VectorIndex.from_chunks(chunks, n, d, kind=args.kind)
        mem = rss_mb() - rss0
        vi.save(path)
        print(describe(vi, n, f"{args.data} (streamed)", d, t, mem, disk_mb(path)) +
              f"; peak RSS {peak_rss_mb():.0f} MiB (the build time includes generating the vectors twice)")
    name, values, default = sweep_values(vi, args)
    runs = {}
    for value in values:
        set_knob(vi, name, value)
        cpu = []
        lat = latencies(lambda q: vi.search(q, 42), queries, cpu)
        runs[value] = (lat, vi.search(queries, 42)[1], np.array(cpu))
    set_knob(vi, name, default)
    with Timer() as tt:
        truth, cand_vecs = exact_pass(chunks, queries, {int(i) for _, c, _ in runs.values() for i in c.ravel()})
    for value, (lat, cand, cpu) in runs.items():
        rr = [row[np.argsort(-np.array([cand_vecs[int(i)] @ q for i in row]))[:10]] for row, q in zip(cand, queries)]
        print(f"  {name} {value:5d}{' (default)' if value == default else '':10s}: recall@10 "
              f"{recall_at_10(cand[:, :10], truth):.3f} | after exact re-rank of 42: {recall_at_10(rr, truth):.3f}"
              f" | search (k=42) p50 {p(lat, 50):6.2f} ms  p99 {p(lat, 99):6.2f} ms  CPU p50 {p(cpu, 50):5.2f} ms")
    print(f"  (exact top-10 of {len(queries)} queries by brute force over the chunks: {tt.s:.0f} s)")
    vi.close()


def exact_pass(chunks, queries: np.ndarray, wanted: set[int]) -> tuple[np.ndarray, dict]:
    """Exact top-10 ids of the queries over all chunks, and the vectors of the `wanted` ids."""
    best_s = np.full((len(queries), 10), -np.inf, np.float32)
    best_i = np.zeros((len(queries), 10), np.int64)
    found = {}
    want = np.array(sorted(wanted), np.int64)
    for ids, v in chunks():
        s = queries @ v.T
        all_s, all_i = np.concatenate([best_s, s], 1), np.concatenate([best_i, np.broadcast_to(ids, s.shape)], 1)
        top = np.argpartition(-all_s, 10, axis=1)[:, :10]
        best_s, best_i = np.take_along_axis(all_s, top, 1), np.take_along_axis(all_i, top, 1)
        hit = np.isin(ids, want)
        found.update(zip(ids[hit].tolist(), v[hit]))
    return best_i, found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--quick", action="store_true", help="sizes 20k and 100k")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--nprobe", default=None, help="inverted file: probe counts to sweep (default: around "
                    "the one the index chose)")
    ap.add_argument("--effort", default="1024", help="pq-sq8 candidate counts (or HNSW efSearch values "
                    "with --kind hnsw-sq8) to sweep")
    ap.add_argument("--kind", default=None, help="flat, ivf-pq-sq8, pq-sq8 or hnsw-sq8 (default: what the "
                    "gallery picks for the size); hnsw-sq8 lives in this benchmark only")
    ap.add_argument("--no-baseline", dest="baseline", action="store_false",
                    help="skip building the former default (pq-sq8) for comparison")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--data", choices=["random", "clustered"], default="random")
    ap.add_argument("--stream-above", type=int, default=2_000_000, help="sizes above this are streamed")
    ap.add_argument("--reuse", action="store_true", help="streamed sizes: search the index an earlier run "
                    "saved in --work-dir instead of building it")
    ap.add_argument("--torch-threads", type=int, default=None, help="torch threads for the text tower")
    ap.add_argument("--no-text", action="store_true", help="skip the text tower (end-to-end) part")
    ap.add_argument("--text-backends", default="torch,onnx", help="runtimes of the text tower for the end-to-end "
                    "rows, each in fp32 and with the text tower in int8 (the first row is the reference)")
    ap.add_argument("--work-dir", default=os.path.join(tempfile.gettempdir(), "clipseek-bench"))
    ap.add_argument("--only", choices=["filtered"], default=None, help="only the filtered and arithmetic rows")
    ap.add_argument("--faiss-threads", type=int, default=None,
                    help="faiss OpenMP threads (1 on a loaded 2-core box: oversubscribed OpenMP made "
                         "training 10x slower here)")
    args = ap.parse_args()
    sizes = [20_000, 100_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    os.makedirs(args.work_dir, exist_ok=True)
    os.environ.setdefault("CLIPSEEK_CACHE", os.path.join(args.work_dir, "cache"))
    encoders = {} if args.no_text or all(n > args.stream_above for n in sizes) else load_encoders(args)
    import faiss

    if args.faiss_threads:
        faiss.omp_set_num_threads(args.faiss_threads)
    print(f"faiss {faiss.__version__}, {os.cpu_count()} cores, faiss threads {faiss.omp_get_max_threads()}; "
          f"{args.queries} {args.data} unit queries; load average {load_avg()}")
    for n in sizes:
        if n > args.stream_above:
            bench_streamed(n, args.dim, args)
        else:
            bench_size(n, args.dim, args, encoders)


def load_encoders(args) -> dict:
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    from clipseek import load_model
    from clipseek.model.quantize import quantize_int8

    ckpt = build_vit_b32(os.path.join(args.work_dir, "vit-b32-random"))
    encoders = {}
    for backend in args.text_backends.split(","):
        if backend == "torch":
            encoders["torch fp32"] = load_model(ckpt, device="cpu", dtype="fp32")
            encoders["torch int8"] = load_model(ckpt, device="cpu", dtype="fp32")
            quantize_int8(encoders["torch int8"].model, towers=("text",))
        elif backend == "onnx":  # exported into CLIPSEEK_CACHE once (cold_start.py shares it)
            encoders["onnx fp32"] = load_model(ckpt, device="cpu", dtype="fp32", backend="onnx")
            encoders["onnx int8"] = load_model(ckpt, device="cpu", dtype="fp32", backend="onnx", int8_text=True)
        else:
            raise SystemExit(f"--text-backends: unknown backend {backend!r} (torch, onnx)")
    for enc in encoders.values():
        enc.encode_texts(QUERIES[:2])  # warm-up
    return encoders


if __name__ == "__main__":
    main()
