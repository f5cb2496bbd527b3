"""Shared fixtures: a tiny CLIP checkpoint built once per session, and generated images. No network."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Ray reads this when it is first imported: local test instances then bind 127.0.0.1, so every test's
# traffic stays on the loopback interface.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import numpy as np
import pytest
from PIL import Image

WORDS = ["a", "photo", "of", "the", "cat", "dog", "car", "tree", "red", "blue", "green", "circle",
         "square", "picture", "small", "big", "bird", "fish", "house", "boat"]


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> str:
    from clipseek.model.scratch import save_new_checkpoint

    out = tmp_path_factory.mktemp("tiny-clip")
    return save_new_checkpoint(str(out), WORDS, seed=0, image_size=32, patch_size=8, width=32,
                               text_width=32, projection_dim=32)


@pytest.fixture(scope="session")
def encoder(tiny_ckpt):
    from clipseek import load_model

    return load_model(tiny_ckpt, device="cpu")


def make_image(seed: int, size=(48, 40), mode="RGB") -> Image.Image:
    rng = np.random.RandomState(seed)
    arr = rng.randint(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    img = Image.fromarray(arr)
    return img if mode == "RGB" else img.convert(mode)


def read_shards(out):
    """Every row, vector and skipped record of a `clipseek embed` output folder, in shard order."""
    from clipseek.embed import shards

    rows, vecs, skipped = [], [], []
    for i in sorted(shards.done_shards(str(out))):
        r, v, _ = shards.read_shard(shards.shard_path(str(out), i))
        rows += r
        vecs.append(v)
        skipped += shards.read_skipped(str(out), i)
    return rows, np.concatenate(vecs), skipped


@pytest.fixture
def image_dir(tmp_path):
    """A small folder of varied images, including a nested subfolder."""
    d = tmp_path / "imgs"
    (d / "sub").mkdir(parents=True)
    for i in range(5):
        make_image(i, (40 + 8 * i, 36)).save(d / f"img{i}.png")
    make_image(9, (64, 48)).save(d / "sub" / "deep.jpg", quality=90)
    return d
