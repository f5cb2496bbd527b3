"""Query latency of a gallery with deleted rows: Gallery.search_vector at N vectors with a share deleted.

Builds a gallery database of N random (or clustered) unit vectors (dim 512), builds its index (exact
"flat", and the approximate kind a build chooses: "ivf-pq-sq8" for clustered data, "pq-sq8" for random
vectors), deletes a random share of the rows (the index is then filtered, not rebuilt,
while deletions stay under the rebuild fraction) and times top-10 queries end to end (index search,
reading the candidates' exact vectors from SQLite, exact re-rank).

    python benchmarks/deleted_rows_bench.py                  # 100k vectors, 5% deleted
    python benchmarks/deleted_rows_bench.py --n 20000 --deleted 0.05 --queries 100
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import numpy as np


def unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    v = rng.standard_normal((n, d), dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def make_db(path: str, n: int, d: int, clustered: bool) -> None:
    from clipseek.gallery.store import Store
    from clipseek.model.fingerprint import Fingerprint

    rng = np.random.default_rng(0)
    centers = unit(rng, 1000, d)
    with Store.open(path) as s:
        s.bind_model(Fingerprint("bench", "1", "none", "float32", "center-224-crop224x224"), d)
        for i in range(0, n, 20_000):
            vecs = unit(rng, min(20_000, n - i), d)
            if clustered:  # as search_bench's clustered data: 1,000 centres, noise 0.5
                vecs = centers[rng.integers(0, 1000, len(vecs))] + 0.5 * vecs
                vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            with s.transaction():
                s.insert_files([(f"/img/{i + j}.png", 1, 1, f"h{i + j}", 8, 8, v) for j, v in enumerate(vecs)])


def run(db: str, threshold: int, frac: float, queries: np.ndarray, k: int) -> None:
    from clipseek.gallery.gallery import Gallery
    from clipseek.gallery.store import Store

    g = Gallery(db, approx_threshold=threshold)
    t0 = time.perf_counter()
    g.search_vector(queries[0], k)  # builds the index
    build_s = time.perf_counter() - t0
    n = g.store.count()
    gone = np.random.default_rng(1).choice(n, int(n * frac), replace=False)
    with Store.open(db) as other, other.transaction():  # another connection: the gallery notices
        other.remove_paths([f"/img/{i}.png" for i in gone])
    t0 = time.perf_counter()
    g.search_vector(queries[0], k)  # notices the deletions (no rebuild below the rebuild fraction)
    sync_s = time.perf_counter() - t0
    idx = g._refresh_index()
    lat, got = [], 0
    for q in queries:
        t = time.perf_counter()
        res = g.search_vector(q, k)
        lat.append(time.perf_counter() - t)
        got += len(res)
    lat = np.array(lat) * 1000
    print(f"{idx.state.kind:10s} {n:,} vectors, {len(gone):,} deleted (index marks {idx.state.deleted:,}): "
          f"build {build_s:.1f} s, first query after deleting {sync_s * 1000:.0f} ms; top-{k} query "
          f"p50 {np.percentile(lat, 50):.2f} ms  p90 {np.percentile(lat, 90):.2f} ms  mean {lat.mean():.2f} ms; "
          f"{got / len(queries):.1f} results per query")
    g.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--deleted", type=float, default=0.05)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--kinds", default="flat,approx", help="flat and/or approx (the kind a build chooses)")
    ap.add_argument("--data", choices=["random", "clustered"], default="random")
    args = ap.parse_args()
    queries = unit(np.random.default_rng(2), args.queries, args.dim)
    if args.data == "clustered":  # near the data, as its vectors are
        centers = unit(np.random.default_rng(0), 1000, args.dim)  # make_db's
        queries = centers[np.random.default_rng(3).integers(0, 1000, args.queries)] + 0.5 * queries
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    with tempfile.TemporaryDirectory(prefix="clipseek-deleted-") as tmp:
        base = os.path.join(tmp, "base.db")
        make_db(base, args.n, args.dim, args.data == "clustered")
        for kind in args.kinds.split(","):
            db = os.path.join(tmp, f"{kind}.db")
            shutil.copy(base, db)
            run(db, args.n + 1 if kind == "flat" else 1, args.deleted, queries, args.k)


if __name__ == "__main__":
    main()
