"""ONNX Runtime vs torch on the bundled model (clipseek-demo), on the test split of synthetic shapes.

For each ONNX variant (fp32; int8 image tower; int8 image + text towers) against torch fp32, in one
process: cosine of image and text vectors (min, mean), top-10 overlap of text-to-image search over the
test images (one caption query per image), and zero-shot top-1 accuracy over the "colour shape"
classes (and its change from torch fp32). Torch int8 (`--dtype int8`) is listed for comparison.

    PYTHONPATH=src python benchmarks/onnx_parity.py [--n 1500] [--model clipseek-demo]
"""

from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np

from clipseek.core.prompts import DEFAULT_TEMPLATE, build_classifier
from clipseek.data.synthetic import class_names, generate
from clipseek.embed.stages import embed_all
from clipseek.model.loader import load_model

VARIANTS = {  # name: load_model keyword arguments
    "torch fp32 (reference)": dict(backend="torch", device="cpu"),
    "onnx fp32": dict(backend="onnx"),
    "onnx int8 image": dict(backend="onnx", dtype="int8"),
    "onnx int8 image+text": dict(backend="onnx", dtype="int8", int8_text=True),
    "torch int8 image": dict(backend="torch", device="cpu", dtype="int8"),
    "torch int8 image+text": dict(backend="torch", device="cpu", dtype="int8", int8_text=True),
}


def top10(queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    return np.argsort(-(queries @ gallery.T), axis=1, kind="stable")[:, :10]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="clipseek-demo")
    ap.add_argument("--n", type=int, default=1500, help="samples drawn (about 15%% land in the test split)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--work-dir", default=os.path.join(tempfile.gettempdir(), "clipseek-bench"))
    args = ap.parse_args()
    root = os.path.join(args.work_dir, f"shapes-{args.n}-{args.seed}")
    samples = generate(root, n=args.n, seed=args.seed)
    test = [s for s in samples if s.split == "test"]
    paths = [os.path.join(root, s.path) for s in test]
    labels = class_names()
    truth = np.array([labels.index(s.label) for s in test])
    captions = [s.caption for s in test]
    print(f"{args.model}: {len(test)} test images, {len(labels)} classes, onnxruntime vs torch fp32")
    ref = None
    for name, kwargs in VARIANTS.items():
        enc = load_model(args.model, **kwargs)
        img = embed_all(enc, paths, batch_size=64).vectors
        txt = enc.encode_texts(captions)
        acc = float(np.mean(np.argmax(img @ build_classifier(enc, labels, [DEFAULT_TEMPLATE]).T, axis=1) == truth))
        if ref is None:
            ref = (img, txt, top10(txt, img), acc)
            print(f"{name:24s} zero-shot top-1 {acc:.2%}")
            continue
        ci, ct = np.sum(img * ref[0], axis=1), np.sum(txt * ref[1], axis=1)
        overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top10(txt, img), ref[2])])
        print(f"{name:24s} cosine image min {ci.min():.6f} mean {ci.mean():.6f}  text min {ct.min():.6f} "
              f"mean {ct.mean():.6f}  top-10 overlap {overlap:.3f}  zero-shot top-1 {acc:.2%} "
              f"({(acc - ref[3]) * 100:+.2f} points)")


if __name__ == "__main__":
    main()
