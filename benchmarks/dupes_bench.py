"""`clipseek dupes`: how well each signal finds copies, and how long the pair search takes at 100k.

Quality: a folder of `--distinct` synthetic pictures (shapes, 256 px, several per class) where
`--copied` of them also get four copies: the same bytes, re-saved as JPEG quality 60, resized to 50%,
and cropped by 5% (5% of the width and height cut off the top-left corner). It is indexed with the
bundled `clipseek-demo` model; precision and recall of the *pairs* (two files of the same original)
are reported for pHash at several bit distances, for CLIP cosine at several thresholds, for each kind
of copy, and for the grouping `find_duplicates` returns with its defaults.

Speed: `--n` random unit vectors (dim `--dim`), with 1% planted near-copies (cosine ~0.97), through
`gallery.dupes.similar.cosine_pairs` (exact blocked products and the IVF range search, recall of the planted
pairs against exact), and `--n` random 64-bit hashes through `gallery.dupes.phash.hamming_pairs`.

    python benchmarks/dupes_bench.py                              # 100k timing (~1 min on 2 cores)
    python benchmarks/dupes_bench.py --part quality [--style photo]  # precision/recall (~45 s)
    python benchmarks/dupes_bench.py --n 20000 --exact               # IVF against the exact search
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import tempfile
import time

import numpy as np
from _common import Timer  # also puts src/ on the path

from clipseek.data.synthetic import COLOURS, SHAPES, photo_like, render

KINDS = ("bytes", "jpeg60", "half", "crop5")


def build_folder(root: str, distinct: int, copied: int, size: int = 256, seed: int = 0,
                 style: str = "shapes"):
    """Originals `o{i}.png` + copies under `copies/`; returns {path: original index}. `shapes`: the
    synthetic dataset's pictures (one shape on a plain, noisy or striped background, 48 classes);
    `photo`: `clipseek.data.synthetic.photo_like`."""
    rng = np.random.default_rng(seed)
    classes = [(c, s) for c in COLOURS for s in SHAPES]
    os.makedirs(os.path.join(root, "copies"), exist_ok=True)
    truth = {}
    for i in range(distinct):
        colour, shape = classes[i % len(classes)]
        img = render(colour, shape, ("small", "large")[i % 2], ("plain", "noise", "stripes")[i % 3],
                     seed * 100_003 + i, size) if style == "shapes" else photo_like(seed * 100_003 + i)
        path = os.path.join(root, f"o{i:03d}.png")
        img.save(path)
        truth[path] = i
    from PIL import Image

    for i in rng.choice(distinct, copied, replace=False).tolist():
        src = os.path.join(root, f"o{i:03d}.png")
        img = Image.open(src).convert("RGB")
        w, h = img.size
        png = ("bytes", "half", "crop5")
        out = {k: os.path.join(root, "copies", f"o{i:03d}-{k}" + (".png" if k in png else ".jpg")) for k in KINDS}
        shutil.copyfile(src, out["bytes"])
        img.save(out["jpeg60"], quality=60)
        img.resize((w // 2, h // 2), Image.LANCZOS).save(out["half"])
        img.crop((round(w * 0.05), round(h * 0.05), w, h)).save(out["crop5"])
        truth.update({p: i for p in out.values()})
    return truth


def kind_of(path: str) -> str:
    return next((k for k in KINDS if path.endswith(f"-{k}.png") or path.endswith(f"-{k}.jpg")), "orig")


def true_pairs(truth: dict[str, int]) -> set[frozenset]:
    by: dict[int, list[str]] = {}
    for p, i in truth.items():
        by.setdefault(i, []).append(p)
    return {frozenset(c) for ps in by.values() for c in itertools.combinations(sorted(ps), 2)}


def pr(found: set[frozenset], truth: set[frozenset]) -> tuple[float, float, int]:
    tp = len(found & truth)
    return tp / max(len(found), 1), tp / max(len(truth), 1), len(found) - tp


def recall_by_kind(found: set[frozenset], truth: set[frozenset]) -> str:
    """Recall of the pairs (original, copy of kind K): what each kind of copy costs a signal."""
    parts = []
    for k in KINDS:
        want = {p for p in truth if sorted(kind_of(x) for x in p) == sorted(["orig", k])}
        parts.append(f"{k} {len(found & want) / max(len(want), 1):.2f}")
    return ", ".join(parts)


def closure(pairs: list[tuple[str, str]]) -> set[frozenset]:
    """Pairs implied by grouping (connected components of the found pairs)."""
    parent: dict[str, str] = {}

    def find(x):
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        parent[find(a)] = find(b)
    groups: dict[str, list[str]] = {}
    for x in list(parent):
        groups.setdefault(find(x), []).append(x)
    return {frozenset(c) for g in groups.values() for c in itertools.combinations(sorted(g), 2)}


def quality(args) -> None:
    from clipseek.gallery.dupes.groups import find_duplicates
    from clipseek.gallery.gallery import Gallery
    from clipseek.gallery.dupes.similar import cosine_pairs
    from clipseek.gallery.dupes.phash import fill_phashes, hamming_pairs

    tmp = tempfile.mkdtemp(prefix="clipseek-dupes-")
    try:
        truth = build_folder(os.path.join(tmp, "photos"), args.distinct, args.copied, style=args.style)
        want = true_pairs(truth)
        with Gallery(os.path.join(tmp, "g.db"), model="clipseek-demo", device="cpu") as g:
            with Timer() as t:
                g.index([os.path.join(tmp, "photos")])
            store = g.store
            fill_phashes(store)  # Gallery.index computes them already: this only checks
            ids, codes = store.phashes()
            vids, vecs = store.all_vectors()
            rows = store.get_rows(vids.tolist())
            print(f"{args.style}: {len(truth)} files ({args.distinct} distinct, {args.copied} x {len(KINDS)} copies), "
                  f"{len(want)} true pairs; indexed (vectors and pHashes) in {t.s:.1f} s")
            path_p = [rows[i].path for i in ids.tolist()]
            path_v = [rows[i].path for i in vids.tolist()]
            print("\nsignal                  pairs  precision  recall  false  recall per kind of copy")
            signals = [(f"pHash <= {d:2d} bits  ", hamming_pairs(codes, d), path_p) for d in args.phash]
            signals += [(f"CLIP cos >= {c:.3f}", cosine_pairs(vecs, c), path_v) for c in args.cosine]
            for label, (i, j, _), paths in signals:
                found = {frozenset((paths[a], paths[b])) for a, b in zip(i, j)}
                p, r, fp = pr(found, want)
                print(f"{label}    {len(found):6d}   {p:8.3f} {r:7.3f} {fp:6d}  {recall_by_kind(found, want)}")
            print("\ngroups (all pairs inside each group), as `clipseek dupes` reports them")
            for d in args.phash:
                for confirm in (None, args.confirm):
                    groups = find_duplicates(store, phash_distance=d, confirm=confirm)
                    found = closure([(g.keep.path, m.path) for g in groups for m in g.extras])
                    p, r, fp = pr(found, want)
                    name = f"pHash <= {d:2d}" + (f" & cos >= {confirm}" if confirm else "")
                    print(f"{name:23s} {len(found):6d}   {p:8.3f} {r:7.3f} {fp:6d}  "
                          f"{recall_by_kind(found, want)}  [{len(groups)} groups]")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def random_unit(n: int, d: int, rng) -> np.ndarray:
    v = rng.standard_normal((n, d), dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def speed(args) -> None:
    from clipseek.gallery.dupes.groups import DEFAULT_PHASH_DISTANCE
    from clipseek.gallery.dupes.similar import cosine_pairs, ivf_lists
    from clipseek.gallery.dupes.phash import hamming_pairs

    rng = np.random.default_rng(0)
    n, d = args.n, args.dim
    v = random_unit(n, d, rng)
    planted = rng.choice(n, n // 100, replace=False)
    targets = rng.choice(np.setdiff1d(np.arange(n), planted), len(planted), replace=False)
    noise = random_unit(len(planted), d, rng)
    v[targets] = 0.97 * v[planted] + np.sqrt(1 - 0.97 ** 2) * noise   # cosine ~0.97 to its source
    v[targets] /= np.linalg.norm(v[targets], axis=1, keepdims=True)
    want = {(min(a, b), max(a, b)) for a, b in zip(planted.tolist(), targets.tolist())}
    print(f"\n{n:,} random unit vectors, dim {d}, {len(want):,} planted pairs (cosine ~0.97); "
          f"threshold {args.threshold}")
    with Timer() as t:
        i, j, _ = cosine_pairs(v, args.threshold, exact=False)
    got = set(zip(i.tolist(), j.tolist()))
    print(f"IVF range search ({ivf_lists(n)} cells): {t.s:.1f} s, {len(got):,} pairs, planted recall "
          f"{len(got & want) / len(want):.4f}")
    if args.exact:
        with Timer() as t:
            i, j, _ = cosine_pairs(v, args.threshold, exact=True)
        exact = set(zip(i.tolist(), j.tolist()))
        print(f"exact blocked products: {t.s:.1f} s, {len(exact):,} pairs; IVF recall against exact "
              f"{len(got & exact) / max(len(exact), 1):.4f}")
    codes = rng.integers(0, 2 ** 63, n, dtype=np.int64).astype(np.uint64) * np.uint64(2) + \
        rng.integers(0, 2, n).astype(np.uint64)
    with Timer() as t:
        i, _, _ = hamming_pairs(codes, DEFAULT_PHASH_DISTANCE)
    print(f"pHash pairs (<= {DEFAULT_PHASH_DISTANCE} bits) over {n:,} random hashes: {t.s:.1f} s, {len(i)} pairs")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=("quality", "speed", "all"), default="speed")
    ap.add_argument("--style", choices=("shapes", "photo"), default="shapes")
    ap.add_argument("--distinct", type=int, default=300)
    ap.add_argument("--copied", type=int, default=100)
    ap.add_argument("--phash", default="4,6,8,10,12")
    ap.add_argument("--cosine", default="0.9,0.95,0.97,0.98,0.99")
    ap.add_argument("--confirm", type=float, default=0.9, help="CLIP cosine confirming a pHash pair")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--threshold", type=float, default=0.95)
    ap.add_argument("--exact", action="store_true", help="also time the exact search (slow at 100k)")
    args = ap.parse_args()
    args.phash = [int(x) for x in args.phash.split(",")]
    args.cosine = [float(x) for x in args.cosine.split(",")]
    t0 = time.perf_counter()
    if args.part in ("quality", "all"):
        quality(args)
    if args.part in ("speed", "all"):
        speed(args)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
