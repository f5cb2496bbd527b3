"""`clipseek index`: one read and one decode per file (model input, pHash, two thumbnails) against the
old two passes (the index, then `fill_phashes` reading and decoding every file again).

A folder of `--n` photo-like JPEGs of 2-4 MP (`clipseek.data.synthetic.photo_like` with sensor-like
grain, quality 90), indexed with the bundled `clipseek-demo` model on the ONNX backend (exported once,
before any timing), into a new database each time, in one process:

  before           the old path: the index with nothing derived in its worker, then the pHash pass
  after, no thumbs the new path with `thumbnails=False` (the pHash from the one decode)
  after            the new path: the pHash and both thumbnails (grid 256 px, view 1,280 px) from it
  before + thumbs  the old path, then both thumbnails made per file as the server made them (lazily)

It also reports the thumbnail store's size per 1,000 images and how many pHashes the new path gives
exactly as the old pass did (the old pass decoded big JPEGs at 1/8 scale).

    python benchmarks/index_bench.py [--n 60] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import numpy as np

from _common import cpu_s  # also puts src/ on the path

SIZES = ((1920, 1080), (2048, 1536), (2304, 1536), (2400, 1600))  # 2.1-3.8 MP


def build_folder(root: str, n: int) -> list[str]:
    from PIL import Image

    from clipseek.data.synthetic import photo_like

    os.makedirs(root, exist_ok=True)
    paths = []
    for i in range(n):
        p = os.path.join(root, f"photo{i:03d}.jpg")
        if not os.path.exists(p):
            img = np.asarray(photo_like(i, SIZES[i % len(SIZES)]), np.float32)
            grain = np.random.default_rng(i).normal(0, 6, img.shape)
            Image.fromarray(np.clip(img + grain, 0, 255).astype(np.uint8)).save(p, quality=90)
        paths.append(p)
    return paths


def encoder():
    import imagehash  # noqa: F401 - imported before any timing, as a long-running process has it

    from clipseek.gallery.gallery import Gallery

    with tempfile.TemporaryDirectory() as d:  # the one-time ONNX export happens here, untimed
        g = Gallery(os.path.join(d, "warm.db"), model="clipseek-demo", backend="onnx")
        return g.encoder


def timed(fn):
    t, c = time.perf_counter(), cpu_s()
    out = fn()
    return time.perf_counter() - t, cpu_s() - c, out


def run_old(enc, folder: str, db: str, workers: int | None):
    from clipseek.gallery.derive import Derive
    from clipseek.gallery.dupes.phash import fill_phashes
    from clipseek.gallery.store import Store
    from clipseek.gallery.sync import index_folders

    with Store.open(db) as s:
        a = timed(lambda: index_folders(s, enc, [folder], workers=workers, derive=Derive(None, phash=False)))
        b = timed(lambda: fill_phashes(s, workers))
        return a, b, dict(s.conn.execute("SELECT path, phash FROM files"))


def run_new(enc, folder: str, db: str, workers: int | None, thumbnails: bool):
    from clipseek.gallery.gallery import Gallery

    with Gallery(db, enc) as g:
        t = timed(lambda: g.index([folder], workers=workers, thumbnails=thumbnails, refresh_index=False))
        return t, dict(g.store.conn.execute("SELECT path, phash FROM files"))


def lazy_thumbs(db: str, paths: list[str]):
    """Both sizes per file as the server made them before: one decode per request."""
    from clipseek.gallery.store import file_hash
    from clipseek.gallery.thumbs import THUMB_SIZES, save_thumbnail, thumbnail_places
    from clipseek.server.files import image_format

    def make():
        for p in paths:
            data, h = open(p, "rb").read(), file_hash(p)
            for px in THUMB_SIZES.values():
                save_thumbnail(image_format(data, 64_000_000, px)[1], thumbnail_places(db + ".thumbs", h, px), px)
    return timed(make)


def disk(folder: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for d, _, fs in os.walk(folder):
        for f in fs:
            key = f.rsplit("-", 1)[-1]
            out[key] = out.get(key, 0) + os.path.getsize(os.path.join(d, f))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--folder", default=os.path.join(tempfile.gettempdir(), "clipseek-index-bench"))
    args = ap.parse_args()
    paths = build_folder(args.folder, args.n)
    mp = np.mean([w * h for w, h in (SIZES[i % len(SIZES)] for i in range(args.n))]) / 1e6
    mb = sum(os.path.getsize(p) for p in paths) / 1e6
    enc = encoder()
    work = tempfile.mkdtemp()
    try:
        (iw, ic, _), (pw, pc, _), old = run_old(enc, args.folder, os.path.join(work, "before.db"), args.workers)
        lw, lc, _ = lazy_thumbs(os.path.join(work, "before.db"), paths)
        (nw, nc, _), _ = run_new(enc, args.folder, os.path.join(work, "nothumbs.db"), args.workers, False)
        (aw, ac, _), new = run_new(enc, args.folder, os.path.join(work, "after.db"), args.workers, True)
        sizes = disk(os.path.join(work, "after.db.thumbs"))
    finally:
        shutil.rmtree(work)
    same = sum(old[p] == new[p] for p in old)
    bits = max(bin(int(old[p], 16) ^ int(new[p], 16)).count("1") for p in old)
    print(f"{args.n} JPEGs, {mp:.1f} MP on average, {mb:.0f} MB; clipseek-demo, ONNX, {os.cpu_count()} cores")
    print("| path | wall s | CPU s |\n|---|---|---|")
    print(f"| before: index, then the pHash pass (second read + decode) | {iw + pw:.2f} ({iw:.2f} + {pw:.2f}) "
          f"| {ic + pc:.2f} |")
    print(f"| before + both thumbnails made afterwards (as the server did, per request) | {iw + pw + lw:.2f} "
          f"| {ic + pc + lc:.2f} |")
    print(f"| after, `thumbnails=False`: one read + decode, pHash included | {nw:.2f} | {nc:.2f} |")
    print(f"| after: one read + decode, pHash and both thumbnails included | {aw:.2f} | {ac:.2f} |")
    for key, total in sorted(sizes.items()):
        print(f"thumbnails {key}: {total / args.n / 1e3:.1f} kB each, "
              f"{total / args.n * 1000 / 1e6:.0f} MB per 1,000 images")
    print(f"pHash as the old pass computed it: {same} of {len(old)} the same, at most {bits} bits apart")


if __name__ == "__main__":
    main()
