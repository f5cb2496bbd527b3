"""Shared fixtures: a tiny CLIP checkpoint built once per session, a fast fake encoder (no torch),
generated images and galleries, the CLI in a subprocess, and a live server. No network."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from typing import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Ray reads this when it is first imported: local test instances then bind 127.0.0.1, so every test's
# traffic stays on the loopback interface.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
# Caches (ONNX exports of the test checkpoints, embeddings) go to a folder of this run, not ~/.cache;
# CLI subprocesses inherit it, so a checkpoint is exported once per run.
if "CLIPSEEK_CACHE" not in os.environ:
    import tempfile

    os.environ["CLIPSEEK_CACHE"] = tempfile.mkdtemp(prefix="clipseek-test-cache-")

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


class FakeEncoder:
    """The Encoder protocol without torch, for tests that need "some encoder", not CLIP quality.

    Image vectors are a fixed random projection of the preprocessed pixels (the same pixels give the
    same vector), text vectors are drawn from a generator seeded by a hash of the text; all are unit
    float32 and the same in every process. It has the protocol's attributes and nothing else.
    """

    def __init__(self, name: str = "fake-clip", dim: int = 32, size: int = 32, framing: str = "center"):
        from clipseek.core.preprocess import PreprocessCfg
        from clipseek.model.fingerprint import Fingerprint

        self.name, self.device, self.dtype_name, self.dim, self.logit_scale = name, "cpu", "float32", dim, 100.0
        self.logit_bias = None  # scored like CLIP (softmax over the labels)
        self.preprocess_cfg = PreprocessCfg(size, (size, size), (0.5,) * 3, (0.5,) * 3, framing=framing)
        self.fingerprint = Fingerprint(name, "v1", "fake", "float32", self.preprocess_cfg.describe())
        self._projection = np.random.default_rng(0).standard_normal((3 * size * size, dim)).astype(np.float32)

    def preprocess(self, image: Image.Image) -> np.ndarray:
        from clipseek.core.preprocess import preprocess

        return preprocess(image.convert("RGB"), self.preprocess_cfg)

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        return _unit(np.asarray(pixels, np.float32).reshape(len(pixels), -1) @ self._projection)

    def encode_images(self, images, batch_size: int = 32) -> np.ndarray:
        if not len(images):
            return np.zeros((0, self.dim), np.float32)
        return self.encode_pixels(np.stack([self.preprocess(im) for im in images]))

    def encode_texts(self, texts, batch_size: int = 256) -> np.ndarray:
        seeds = [int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little") for t in texts]
        return _unit(np.array([np.random.default_rng(s).standard_normal(self.dim) for s in seeds],
                              np.float32).reshape(len(texts), self.dim))


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)).astype(np.float32)


@pytest.fixture(scope="session")
def fake_encoder() -> FakeEncoder:
    return FakeEncoder()


def make_image(seed: int, size=(48, 40), mode="RGB") -> Image.Image:
    rng = np.random.RandomState(seed)
    arr = rng.randint(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    img = Image.fromarray(arr)
    return img if mode == "RGB" else img.convert(mode)


def image_folder(d, n: int, size: Callable[[int], tuple[int, int]] | None = None, name: str = "p{}.png",
                 broken: bool = False):
    """`n` generated PNGs in the new folder `d`: image i is make_image(i, size(i)) (make_image's
    default size without `size`), named `name.format(i)`; plus a broken JPEG if `broken`. Returns `d`."""
    d.mkdir(parents=True)
    for i in range(n):
        (make_image(i, size(i)) if size else make_image(i)).save(d / name.format(i))
    if broken:
        (d / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    return d


def indexed_gallery(root, encoder, n: int, size: Callable[[int], tuple[int, int]] | None = None,
                    name: str = "p{}.png") -> str:
    """image_folder(root, n, size, name) indexed with `encoder` into g.db beside `root` (all `n`
    added); returns the database's path."""
    import clipseek

    image_folder(root, n, size, name)
    db = str(root.parent / "g.db")
    with clipseek.Gallery(db, encoder) as g:
        assert g.index([str(root)]).added == n
    return db


def cli_env(**extra: str) -> dict:
    """The environment of a `clipseek` subprocess: offline, no warnings, plus `extra`."""
    return dict(os.environ, HF_HUB_OFFLINE="1", PYTHONWARNINGS="ignore", **extra)


def run_cli(*args, cwd=None) -> subprocess.CompletedProcess:
    """`clipseek ARGS...` in a new process (`python -m clipseek.cli`), output captured as text."""
    return subprocess.run([sys.executable, "-m", "clipseek.cli", *map(str, args)], capture_output=True,
                          text=True, env=cli_env(), cwd=cwd, timeout=300)


@contextmanager
def live_server(app):
    """`app` under uvicorn on a free port of 127.0.0.1, in a background thread, for a real browser:
    yields its base URL; stops the server when the block ends."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not srv.started:
        assert thread.is_alive() and time.time() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        srv.should_exit = True
        thread.join(10)
        sock.close()


def read_shards(out):
    """Every row, vector and skipped record of a `clipseek embed` output folder, in shard order."""
    from clipseek.embed import shard_load, shards

    rows, vecs, skipped = [], [], []
    for i in sorted(shards.done_shards(str(out))):
        r, v, _ = shard_load.read_shard(shards.shard_path(str(out), i))
        rows += r
        vecs.append(v)
        skipped += shard_load.read_skipped(str(out), i)
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


# Words of the tiny SigLIP's vocabulary: Latin, Cyrillic, Greek and Han, with case and accents that a
# lowercasing or ASCII-folding step would merge ("Кошка"/"кошка", "café"/"cafe").
SIGLIP_WORDS = WORDS + ["кошка", "Кошка", "собака", "猫", "犬", "一只猫", "γάτα", "σκύλος", "café", "cafe"]


@pytest.fixture(scope="session")
def tiny_siglip_ckpt(tmp_path_factory) -> str:
    from tiny_siglip import save_tiny_siglip

    return save_tiny_siglip(str(tmp_path_factory.mktemp("tiny-siglip")), SIGLIP_WORDS, seed=0)


@pytest.fixture(scope="session")
def siglip_encoder(tiny_siglip_ckpt):
    from clipseek import load_model

    return load_model(tiny_siglip_ckpt, device="cpu")


def wait_for(cond, timeout: float = 60) -> bool:
    """Poll `cond()` every 50 ms until it is true (True) or `timeout` seconds pass (False)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def photos(tmp_path):
    """11 small PNGs (3 in a subfolder), a broken JPEG and an empty PNG (tests may define their own)."""
    d = tmp_path / "photos"
    (d / "sub").mkdir(parents=True)
    for i in range(11):
        make_image(i, (40 + i, 36)).save(d / ("sub" if i % 4 == 0 else "") / f"p{i:02d}.png")
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (d / "empty.png").write_bytes(b"")
    return d


def write_parquet_dataset(folder, split: str, n: int = 4):
    """A `datasets` parquet folder with the image bytes inside: `n` images labelled ant/bee."""
    import io

    import datasets

    blobs = []
    for i in range(n):
        buf = io.BytesIO()
        make_image(i).save(buf, "PNG")
        blobs.append({"bytes": buf.getvalue(), "path": f"img{i}.png"})
    feats = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["ant", "bee"])})
    folder.mkdir()
    labels = [(0, 1, 1, 0)[i % 4] for i in range(n)]
    datasets.Dataset.from_dict({"image": blobs, "label": labels}, features=feats).to_parquet(
        str(folder / f"{split}.parquet"))
    return folder
