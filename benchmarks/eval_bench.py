"""Benchmark: evaluate 1,000 generated images twice with the same model; the second run hits the cache.

    PYTHONPATH=src python benchmarks/eval_bench.py [--model clipseek-demo|DIR] [--n 1000] [--size 160]

Both runs go through `eval_run.evaluate_model` (readers -> embed via cache -> classifier -> metrics) with
the model loaded once beforehand; run 1 starts from an empty cache directory. Default model: the bundled
`clipseek-demo` when present, else a small random CLIP checkpoint (224 px, ViT-B/32-like patching,
narrower and shallower) built in a temp dir. Target: cached run >= 10x faster.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

CLASSES = ["red circle", "green circle", "blue circle", "red square", "green square", "blue square",
           "red tree", "blue boat", "green fish", "red house"]


def make_images(root: Path, n: int, size: int) -> None:
    rng = np.random.RandomState(0)
    colours = {"red": (210, 40, 40), "green": (40, 180, 60), "blue": (40, 60, 210)}
    for i in range(n):
        c = CLASSES[i % len(CLASSES)]
        d = root / "test" / c.replace(" ", "_")
        d.mkdir(parents=True, exist_ok=True)
        bg = tuple(int(x) for x in rng.randint(150, 255, 3))
        img = Image.new("RGB", (size, size), bg)
        draw = ImageDraw.Draw(img)
        x, y, r = rng.randint(size // 4, 3 * size // 4, 2).tolist() + [int(rng.randint(size // 8, size // 4))]
        fill = colours[c.split()[0]]
        (draw.ellipse if "circle" in c else draw.rectangle)([x - r, y - r, x + r, y + r], fill=fill)
        img.save(d / f"{i:05d}.jpg", quality=90)


def default_model(tmp: Path) -> str:
    from clipseek.model.loader import BUNDLED_MODELS

    if (BUNDLED_MODELS["clipseek-demo"] / "config.json").is_file():
        return "clipseek-demo"
    from clipseek.core.prompts import words_of
    from clipseek.model.scratch import save_new_checkpoint

    words = words_of(CLASSES + ["a photo of a"])
    return save_new_checkpoint(str(tmp / "bench-clip"), words, seed=0, image_size=224, patch_size=32,
                               width=256, layers=4, heads=4, text_width=128, projection_dim=128)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--size", type=int, default=160, help="generated image side in pixels")
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from clipseek.data.load import load_labelled
    from clipseek.embed.cache import EmbeddingCache
    from clipseek.evaluation import run as eval_run
    from clipseek.model.loader import load_model

    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        make_images(tmp / "data", args.n, args.size)
        model = args.model or default_model(tmp)
        enc = load_model(model, device="cpu")
        prompts = eval_run.resolve_prompt_sets(["a photo of a {}."])
        times = []
        for run in (1, 2):
            t0 = time.perf_counter()
            ds = load_labelled(str(tmp / "data"))
            cache = EmbeddingCache(tmp / "cache")
            rows, skipped = eval_run.evaluate_model(enc, model, ds, prompts, cache=cache,
                                                    batch_size=args.batch_size)
            cache.close()
            times.append(time.perf_counter() - t0)
            print(f"run {run}: {times[-1]:.2f} s  ({len(ds)} images, top-1 {rows[0]['metrics']['top1']:.3f}, "
                  f"{len(skipped)} skipped)", flush=True)
        print(f"model: {model} ({enc.fingerprint})")
        print(f"first run {times[0]:.2f} s, cached run {times[1]:.3f} s, speed-up {times[0] / times[1]:.1f}x "
              f"(target >= 10x)")


if __name__ == "__main__":
    main()
