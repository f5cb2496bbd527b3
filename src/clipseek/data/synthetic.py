"""A deterministic synthetic image-caption dataset: coloured shapes on varied backgrounds.

Used to train the bundled demo model and to test every capability end to end offline.
Classes are "colour shape"; a few (colour, shape) pairs are held out of the training split entirely,
so zero-shot generalisation to unseen combinations can be measured on the test split.
"""

from __future__ import annotations

import json
import math
import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from clipseek._io import atomic_write_json, atomic_write_text

SHAPES = ("circle", "square", "triangle", "star", "cross", "ring")
COLOURS = {
    "red": (215, 35, 35), "green": (35, 165, 55), "blue": (35, 70, 215), "yellow": (240, 215, 30),
    "purple": (135, 45, 180), "orange": (245, 135, 25), "white": (248, 248, 248), "black": (18, 18, 18),
}
BACKGROUNDS = ("plain", "noise", "stripes")
SIZES = ("small", "large")
# Held out of the training split (each colour and each shape still appears in training elsewhere).
HELD_OUT = (("red", "star"), ("blue", "circle"), ("green", "triangle"), ("yellow", "square"),
            ("purple", "cross"), ("orange", "ring"))
SPLITS = (("train", 0.8), ("val", 0.1), ("test", 0.1))


@dataclass(frozen=True)
class Sample:
    path: str          # relative to the dataset root
    caption: str
    colour: str
    shape: str
    size: str
    background: str
    split: str

    @property
    def label(self) -> str:
        return f"{self.colour} {self.shape}"


def class_names() -> list[str]:
    return [f"{c} {s}" for c in COLOURS for s in SHAPES]


def _shape_points(shape: str, cx: float, cy: float, r: float, rot: float) -> list[tuple[float, float]]:
    def polar(n, radii, offset):
        return [(cx + radii[i % len(radii)] * math.cos(offset + 2 * math.pi * i / n),
                 cy + radii[i % len(radii)] * math.sin(offset + 2 * math.pi * i / n)) for i in range(n)]

    if shape == "square":
        return polar(4, [r * 1.2], rot + math.pi / 4)
    if shape == "triangle":
        return polar(3, [r * 1.25], -math.pi / 2 + rot * 0.3)
    if shape == "star":
        return polar(10, [r * 1.25, r * 0.5], -math.pi / 2 + rot * 0.3)
    if shape == "cross":
        a, b = r * 1.1, r * 0.38
        pts = [(-b, -a), (b, -a), (b, -b), (a, -b), (a, b), (b, b), (b, a), (-b, a), (-b, b), (-a, b),
               (-a, -b), (-b, -b)]
        c, s = math.cos(rot * 0.3), math.sin(rot * 0.3)
        return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in pts]
    raise ValueError(shape)


def _background(rng: random.Random, kind: str, size: int) -> Image.Image:
    base = [rng.randint(95, 165) + rng.randint(-15, 15) for _ in range(3)]
    if kind == "plain":
        return Image.new("RGB", (size, size), tuple(base))
    if kind == "noise":
        nrng = np.random.default_rng(rng.randrange(2**32))
        arr = np.clip(np.array(base)[None, None, :] + nrng.normal(0, 22, (size, size, 3)), 0, 255)
        return Image.fromarray(arr.astype(np.uint8))
    img = Image.new("RGB", (size, size), tuple(base))
    other = tuple(int(np.clip(b + rng.choice([-45, 45]), 0, 255)) for b in base)
    draw = ImageDraw.Draw(img)
    width = rng.randint(3, 7)
    vertical = rng.random() < 0.5
    for k in range(0, size, 2 * width):
        draw.rectangle((k, 0, k + width - 1, size) if vertical else (0, k, size, k + width - 1), fill=other)
    return img


def photo_like(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A photo-like picture for tests and benchmarks (duplicates, decoding): a smooth colour field (an
    8x6 random grid, bicubic) and six discs; distinct seeds give distinct pictures."""
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize(size, Image.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x, y, r = rng.integers(0, size[0]), rng.integers(0, size[1]), rng.integers(10, 60)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    return img


def render(colour: str, shape: str, size_word: str, background: str, seed: int, size: int = 64) -> Image.Image:
    """Draw one sample; the same arguments always give the same pixels."""
    rng = random.Random(seed)
    scale = 4  # draw large then downsample: anti-aliased edges
    big = size * scale
    img = _background(rng, background, size).resize((big, big), Image.NEAREST)
    r = big * (rng.uniform(0.13, 0.18) if size_word == "small" else rng.uniform(0.26, 0.33))
    cx, cy = rng.uniform(r * 1.3, big - r * 1.3), rng.uniform(r * 1.3, big - r * 1.3)
    fill = tuple(int(np.clip(v + rng.randint(-18, 18), 0, 255)) for v in COLOURS[colour])
    draw = ImageDraw.Draw(img)
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif shape == "ring":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=fill, width=max(2, int(r * 0.35)))
    else:
        draw.polygon(_shape_points(shape, cx, cy, r, rng.uniform(0, math.pi)), fill=fill)
    return img.resize((size, size), Image.LANCZOS)


CAPTION_TEMPLATES = (
    "a {size} {colour} {shape}", "a {colour} {shape}", "a photo of a {colour} {shape}",
    "a {colour} {shape} on a {bg} background", "a picture of a {size} {colour} {shape}",
    "a photo of a {size} {colour} {shape} on a {bg} background", "the {colour} {shape}",
    "a drawing of a {colour} {shape}", "a {size} {colour} {shape} on {bgphrase}",
)
# Captions naming one attribute only: they teach colour and shape as separate concepts, which is what
# lets the model recognise (colour, shape) pairs it never saw together.
PARTIAL_TEMPLATES = ("a {shape}", "a photo of a {shape}", "a {size} {shape}", "a {shape} on a {bg} background",
                     "a {colour} shape", "a photo of a {colour} shape", "something {colour}")
PARTIAL_RATE = 0.3
BG_PHRASE = {"plain": "a plain background", "noise": "a noisy background", "stripes": "stripes"}
BG_WORD = {"plain": "plain", "noise": "noisy", "stripes": "striped"}


def caption_for(rng: random.Random, colour: str, shape: str, size: str, bg: str) -> str:
    t = rng.choice(PARTIAL_TEMPLATES if rng.random() < PARTIAL_RATE else CAPTION_TEMPLATES)
    return t.format(size=size, colour=colour, shape=shape, bg=BG_WORD[bg], bgphrase=BG_PHRASE[bg])


def vocabulary() -> list[str]:
    """Every word the captions and standard prompts use (the demo model's tokenizer vocabulary)."""
    from clipseek.core.prompts import words_of

    extra = ["photo", "picture", "of", "the", "a", "an", "this", "is", "shape", "colour", "color",
             "image", "drawing", "on", "background", "with", "and", "in", "something"]
    texts = list(COLOURS) + list(SHAPES) + list(SIZES) + list(BG_WORD.values()) + \
        list(BG_PHRASE.values()) + list(CAPTION_TEMPLATES) + \
        list(PARTIAL_TEMPLATES) + extra
    return sorted(set(words_of(texts)) - {"{", "}", "bg", "bgphrase"})


def plan(n: int, seed: int = 0) -> list[Sample]:
    """Decide every sample (attributes, split, caption) without drawing anything."""
    rng = random.Random(seed)
    classes = [(c, s) for c in COLOURS for s in SHAPES]
    held = set(HELD_OUT)
    samples: list[Sample] = []
    for i in range(n):
        colour, shape = classes[i % len(classes)]
        u = rng.random()
        split = "train" if u < SPLITS[0][1] else "val" if u < SPLITS[0][1] + SPLITS[1][1] else "test"
        if (colour, shape) in held and split == "train":
            split = "test" if rng.random() < 0.5 else "val"
        size, bg = rng.choice(SIZES), rng.choice(BACKGROUNDS)
        cap = caption_for(rng, colour, shape, size, bg)
        path = f"{split}/{colour} {shape}/{i:06d}.png"
        samples.append(Sample(path, cap, colour, shape, size, bg, split))
    return samples


def _draw_range(job) -> int:
    out, samples, start, seed, image_size = job
    for i, s in enumerate(samples, start):
        render(s.colour, s.shape, s.size, s.background, seed * 1_000_003 + i, image_size).save(out / s.path)
    return len(samples)


def generate(out_dir: str | os.PathLike, n: int = 2000, seed: int = 0, image_size: int = 64,
             on_progress=None, workers: int = 1) -> list[Sample]:
    """Write images (folder per class per split) and manifest.jsonl (+ one JSONL per split).
    `workers` > 1 draws in that many processes; the pixels do not depend on it."""
    out = Path(out_dir)
    samples = plan(n, seed)
    for d in sorted({os.path.dirname(s.path) for s in samples}):
        (out / d).mkdir(parents=True, exist_ok=True)
    chunk = 500
    jobs = [(out, samples[k:k + chunk], k, seed, image_size) for k in range(0, n, chunk)]
    if workers > 1 and len(jobs) > 1:
        from multiprocessing import get_context

        with get_context("spawn").Pool(min(workers, len(jobs))) as pool:
            for done in pool.imap_unordered(_draw_range, jobs):
                if on_progress:
                    on_progress(done)
    else:
        for job in jobs:
            done = _draw_range(job)
            if on_progress:
                on_progress(done)
    rows = [{"image": s.path, "label": s.label, **asdict(s)} for s in samples]
    for r in rows:
        r.pop("path")
    _write_jsonl(out / "manifest.jsonl", rows)
    for split, _ in SPLITS:
        _write_jsonl(out / f"{split}.jsonl", [r for r in rows if r["split"] == split])
    atomic_write_json(out / "dataset.json", {
        "generator": "clipseek.data.synthetic", "n": n, "seed": seed, "image_size": image_size,
        "shapes": list(SHAPES), "colours": list(COLOURS), "held_out": [" ".join(h) for h in HELD_OUT],
    })
    return samples


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))
