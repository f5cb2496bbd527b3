"""Videos in a gallery: re-indexing an unchanged folder of N videos against N photos, and search with
moments in the index (`video_bench.py --gallery` runs this).

1. N short shapes clips (each made distinct by its seed) and N photos, indexed once with the bundled
   model (clips of the same size and shapes are byte-identical: copies, not embedded); then `index`
   again on each unchanged folder, timed (best of 3): both are a stat per file.
2. Search p50 over that gallery (photos and videos together, `Gallery.search_vector`).
3. The moments' vector index alone at `--moments` synthetic unit vectors (clustered, dim 512), as
   `gallery.search.moments` asks it (fetch = 4 x k): p50 of one query, exact ("flat") under the
   approximate threshold, inverted file over it.

    PYTHONPATH=src python benchmarks/video_gallery_bench.py [--n 100] [--moments 200000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np


def make_folders(tmp: str, n: int) -> tuple[str, str]:
    from clipseek.data.synthetic_video import H264, Segment, segment_picture, shapes_clip

    videos, photos = os.path.join(tmp, "videos"), os.path.join(tmp, "photos")
    os.makedirs(videos)
    os.makedirs(photos)
    labels = ["red star", "blue circle", "green triangle", None]
    for i in range(n):
        segs = (Segment(1.0, labels[i % 4]), Segment(1.0, labels[(i // 4) % 4]))
        shapes_clip(os.path.join(videos, f"v{i:04d}.mp4"), H264, segments=segs, size=48 + 2 * (i // 16 % 16), fps=10)
        segment_picture(labels[i % 4], 64, seed=i).save(os.path.join(photos, f"p{i:04d}.png"))
    return videos, photos


def reindex_time(gallery, folder: str) -> float:
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        s = gallery.index(folder)
        best = min(best, time.perf_counter() - t)
        assert s.added == s.updated == 0, s
    return best


def p50(fn, n: int = 50) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def synthetic_moments(m: int, dim: int = 512, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(m // 300, 1), dim)).astype(np.float32)  # ~a video's worth each
    v = centres[rng.integers(0, len(centres), m)] + 0.6 * rng.standard_normal((m, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100, help="videos and photos each")
    ap.add_argument("--moments", type=int, default=200_000, help="synthetic moments for the index alone")
    args = ap.parse_args()
    from clipseek.gallery.gallery import Gallery
    from clipseek.gallery.search.vector_index import VectorIndex
    from clipseek.model.loader import load_model

    enc = load_model("clipseek-demo", backend="onnx" if os.environ.get("BENCH_ONNX") else "torch")
    with tempfile.TemporaryDirectory() as tmp:
        videos, photos = make_folders(tmp, args.n)
        with Gallery(os.path.join(tmp, "g.db"), enc) as g:
            t = time.perf_counter()
            first = g.index([videos, photos])
            print(f"first index of {args.n} videos + {args.n} photos: {time.perf_counter() - t:.1f} s "
                  f"({first.moments} moments)")
            rv, rp = reindex_time(g, videos), reindex_time(g, photos)
            print(f"| re-index unchanged, {args.n} files | videos {rv * 1000:.0f} ms | photos {rp * 1000:.0f} ms |")
            q = g.query_vector([], None, enc.encode_texts(["a red star"])[0])
            g.search_vector(q, 10)
            print(f"| search p50, photos and videos together, k=10 | {p50(lambda: g.search_vector(q, 10)):.2f} ms |")
    vecs = synthetic_moments(args.moments)
    ids = np.arange(1, len(vecs) + 1, dtype=np.int64)
    t = time.perf_counter()
    vi = VectorIndex.build(ids, vecs)
    build = time.perf_counter() - t
    qs = synthetic_moments(50, seed=1)
    it = iter(range(10 ** 9))
    ms = p50(lambda: vi.search(qs[next(it) % 50][None, :], 40))
    print(f"| moments' index alone: {args.moments:,} moments ({vi.state.kind}, built in {build:.1f} s) | "
          f"p50 {ms:.2f} ms for 40 moments |")


if __name__ == "__main__":
    main()
