"""Measure a model on the synthetic shapes data (the bundled demo model's acceptance figures).

    python benchmarks/demo_model_eval.py --model clipseek-demo --data /tmp/synth [--split test]

Prints zero-shot top-1 over shape names, over colour names, over all "colour shape" classes (and on
the classes held out of training), and text-to-image recall@5 for the split's captions.
Retrieval relevance: an image is a correct hit for a caption when it has every attribute the caption
names (colour, shape, size, background — whichever it mentions) — captions are not unique on
synthetic data, so the exact paired image is one of several equally correct answers. The strict
"exact paired image" recall is printed too.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from clipseek.core.prompts import build_classifier
from clipseek.core.scores import probabilities
from clipseek.data.synthetic import BG_WORD, COLOURS, SHAPES
from clipseek.embed.stages import embed_all
from clipseek.model.loader import load_model


def caption_hits(rows: list[dict], top: np.ndarray) -> list[bool]:
    """Per caption (row i), whether any image in top[i] has every attribute the caption names."""
    hits = []
    for i, r in enumerate(rows):
        cap = r["caption"].split()
        need = {k: r[k] for k in ("colour", "shape", "size") if r[k] in cap}
        if BG_WORD[r["background"]] in cap or ("stripes" in cap and r["background"] == "stripes"):
            need["background"] = r["background"]
        hits.append(any(all(rows[j][k] == val for k, val in need.items()) for j in top[i]))
    return hits


def measure(model: str, data: str, split: str = "test", limit: int | None = None) -> dict:
    rows = [json.loads(l) for l in open(Path(data) / f"{split}.jsonl")]
    rows = rows[:limit] if limit else rows
    held = set(json.loads((Path(data) / "dataset.json").read_text())["held_out"])
    enc = load_model(model, device="cpu")
    t0 = time.perf_counter()
    emb = embed_all(enc, [str(Path(data) / r["image"]) for r in rows], batch_size=128)
    assert len(emb.paths) == len(rows), emb.skipped
    v = emb.vectors

    def top1(names, truth, template):
        w = build_classifier(enc, names, [template])
        pred = probabilities(v, w, enc.logit_scale).argmax(1)
        return float(np.mean([names[p] == t for p, t in zip(pred, truth)]))

    shapes = top1(list(SHAPES), [r["shape"] for r in rows], "a photo of a {}.")
    colours = top1(list(COLOURS), [r["colour"] for r in rows], "a photo of a {} shape.")
    classes = [f"{c} {s}" for c in COLOURS for s in SHAPES]
    w = build_classifier(enc, classes, ["a photo of a {}."])
    pred = probabilities(v, w, enc.logit_scale).argmax(1)
    correct = np.array([classes[p] == r["label"] for p, r in zip(pred, rows)])
    is_held = np.array([r["label"] in held for r in rows])

    t = enc.encode_texts([r["caption"] for r in rows])
    top5 = np.concatenate([np.argpartition(-(t[k:k + 2048] @ v.T), 5, axis=1)[:, :5]
                           for k in range(0, len(t), 2048)])  # the 5 best, in any order
    hits = caption_hits(rows, top5)
    strict = [i in top5[i] for i in range(len(rows))]
    return {"model": model, "split": split, "images": len(rows), "shape_top1": shapes,
            "colour_top1": colours, "class_top1_all": float(correct.mean()),
            "class_top1_held_out": float(correct[is_held].mean()) if is_held.any() else None,
            "held_out_images": int(is_held.sum()), "t2i_recall@5": float(np.mean(hits)),
            "t2i_recall@5_exact_image": float(np.mean(strict)), "seconds": time.perf_counter() - t0}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="clipseek-demo")
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int)
    a = ap.parse_args()
    print(json.dumps(measure(a.model, a.data, a.split, a.limit), indent=1))
