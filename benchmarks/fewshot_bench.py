"""Few-shot curves and fitting time on the bundled model's synthetic shapes (issue 27).

    PYTHONPATH=src python benchmarks/fewshot_bench.py [--n 4800] [--seeds 3] [--coverage 0.9] [--dir DIR]

Data: `clipseek synth`'s shapes drawn with seed 7. The demo model was trained on seed 0 (render seeds
0 .. 115,199; seed s draws with render seeds s * 1,000,003 + i), so none of these pictures was seen in
training. The generator's own split keeps six (colour, shape) pairs out of its train split; here every
class is split the same way instead: per class half the pictures are the pool examples are drawn from,
a quarter calibrates (--coverage), a quarter is the test set. Two tasks on the same pictures: the
48 "colour shape" classes (zero-shot is strong: the model was trained on these words) and 18 "shape
on a background" classes (the words for backgrounds barely work for this model: where examples help).

Prints (Markdown): top-1 on the test set for every method at 1, 2, 4, 8, 16 examples per class (mean
over --seeds draws), beside zero-shot; with --coverage the empirical coverage and mean set size; and
the time to fit 1,000 examples from cached vectors (reading them from the embedding cache included).
On a busy machine multi-threaded BLAS spends small products waiting: OPENBLAS_NUM_THREADS=1 for the
fitting times.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

import numpy as np

SHOTS = (1, 2, 4, 8, 16)


def split_indices(y: np.ndarray, seed: int = 0):
    rng = np.random.RandomState(seed)
    pool, cal, test = [], [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        h, q = len(idx) // 2, (3 * len(idx)) // 4
        pool += list(idx[:h])
        cal += list(idx[h:q])
        test += list(idx[q:])
    return [np.sort(np.array(a, np.int64)) for a in (pool, cal, test)]


BG_WORD = {"plain": "plain", "noise": "noisy", "stripes": "striped"}
# (title, the class of a manifest row, the label text of a class)
TASKS = (("colour shape: 48 classes the model's words name", lambda r: r["label"], lambda c: c),
         ("shape on a background: 18 classes whose background words this model barely knows",
          lambda r: f"{r['shape']} {r['background']}",
          lambda c: f"{c.split()[0]} on a {BG_WORD[c.split()[1]]} background"))


def curve_table(task: str, enc, x, labels, args) -> None:
    from clipseek.core.prompts import build_classifier
    from clipseek.core.scores import probabilities
    from clipseek.evaluation.fewshot_eval import curves
    from clipseek.fewshot.examples import ExampleSet, text_vectors
    from clipseek.fewshot.methods import METHODS

    title, label_of, text_of = task
    classes = sorted(set(labels))
    y = np.array([classes.index(lab) for lab in labels])
    texts = [text_of(c) for c in classes]
    pool, cal, test = split_indices(y)
    tv = text_vectors(enc, texts, ["a photo of a {}."])
    base = ExampleSet(classes, texts, tv, x[pool], y[pool], float(enc.logit_scale), str(enc.fingerprint),
                      (x[cal], y[cal]))
    zs = float((probabilities(x[test], build_classifier(enc, texts, ["a photo of a {}."]),
                              enc.logit_scale).argmax(1) == y[test]).mean())
    t0 = time.perf_counter()
    rows = curves(base, (x[pool], y[pool]), (x[test], y[test]), SHOTS, args.seeds, args.coverage, zs)
    print(f"\n## {title}\n\n{len(pool)} pool, {len(cal)} calibration, {len(test)} test images. Top-1 on the "
          f"test images (with --coverage {args.coverage:g}: empirical coverage · mean set size), mean of "
          f"{args.seeds} draws; all fits {time.perf_counter() - t0:.0f} s.\n")
    print("| method | " + " | ".join(f"{k} shot{'s' * (k > 1)}" for k in SHOTS) + " |")
    print("|---|" + "---|" * len(SHOTS))
    print("| zero-shot | " + " | ".join(f"{zs:.1%}" for _ in SHOTS) + " |")
    for m in (*METHODS, "auto"):
        cells = []
        for k in SHOTS:
            r = next(r for r in rows if r["method"] == m and r["shots"] == k)
            c = f"{r['top1']:.1%}"
            if r.get("coverage") is not None:
                c += f" ({r['coverage']:.1%} · {r['mean_set_size']:.2f})"
            cells.append(c)
        print(f"| {m} | " + " | ".join(cells) + " |")


def fit_times(enc, cache, paths, labels) -> None:
    from clipseek.embed.cache import embed_cached
    from clipseek.fewshot.classifier import fit_classifier
    from clipseek.fewshot.examples import ExampleSet, text_vectors
    from clipseek.fewshot.methods import METHODS

    classes = sorted(set(labels))
    idx = np.random.RandomState(0).choice(len(paths), 1000, replace=False)
    t0 = time.perf_counter()
    got = embed_cached(enc, [paths[i] for i in idx], cache, batch_size=128)
    t_read = time.perf_counter() - t0
    assert len(got.paths) == 1000
    ex = ExampleSet(classes, classes, text_vectors(enc, classes, ["a photo of a {}."]), got.vectors,
                    np.array([classes.index(labels[i]) for i in idx]), float(enc.logit_scale), str(enc.fingerprint))
    print(f"\n## Fitting 1,000 examples (48 classes, 64-d vectors)\n\nReading the 1,000 vectors from the "
          f"embedding cache: {t_read * 1000:.0f} ms. BLAS threads: "
          f"{os.environ.get('OPENBLAS_NUM_THREADS', 'default')}.\n")
    print("| method | fit (s) | fit with --coverage 0.9 (s) |\n|---|---|---|")
    for m in (*METHODS, "auto"):
        t0 = time.perf_counter()
        fit_classifier(ex, m)
        a = time.perf_counter() - t0
        t0 = time.perf_counter()
        fit_classifier(ex, m, coverage=0.9)
        print(f"| {m} | {a:.2f} | {time.perf_counter() - t0:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4800)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--coverage", type=float, default=0.9)
    ap.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "clipseek-fewshot-bench"))
    args = ap.parse_args()

    import json

    from clipseek.data.synthetic import generate
    from clipseek.embed.cache import EmbeddingCache, embed_cached
    from clipseek.model.loader import load_model

    root = Path(args.dir)
    t0 = time.perf_counter()
    if not (root / "data" / "manifest.jsonl").exists():
        generate(root / "data", n=args.n, seed=7, workers=os.cpu_count() or 1)
    rows = [json.loads(line) for line in open(root / "data" / "manifest.jsonl")]
    t_draw = time.perf_counter() - t0
    enc = load_model("clipseek-demo", device="cpu")
    cache = EmbeddingCache(root / "cache")
    t0 = time.perf_counter()
    paths = [str(root / "data" / r["image"]) for r in rows]
    emb = embed_cached(enc, paths, cache, batch_size=128)
    assert emb.paths == paths, emb.skipped
    print(f"# Few-shot curves: clipseek-demo on synthetic shapes of seed 7 ({len(rows)} images, never seen in "
          f"training; drawn in {t_draw:.0f} s, embedded in {time.perf_counter() - t0:.0f} s)")
    for task in TASKS:
        curve_table(task, enc, emb.vectors, [task[1](r) for r in rows], args)
    fit_times(enc, cache, paths, [r["label"] for r in rows])


if __name__ == "__main__":
    main()
