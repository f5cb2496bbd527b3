"""Helpers the tests share: a fast fake encoder, generated images and galleries, the CLI in a
subprocess, a live server, Parquet shards. Import them from here (`from helpers import image_folder`);
the fixtures are in conftest.py."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image, ImageDraw

WORDS = ["a", "photo", "of", "the", "cat", "dog", "car", "tree", "red", "blue", "green", "circle",
         "square", "picture", "small", "big", "bird", "fish", "house", "boat"]


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


def index_folder(root, encoder) -> str:
    """Index the folder `root` with `encoder` into g.db beside it; returns the database's path."""
    import clipseek

    db = str(Path(root).parent / "g.db")
    with clipseek.Gallery(db, encoder) as g:
        g.index([str(root)])
    return db


@contextmanager
def app_client(db, encoder, base_url: str = "http://127.0.0.1", **app_options):
    """The gallery `db` served in-process: a FastAPI TestClient on create_app(db, encoder, ...)."""
    from fastapi.testclient import TestClient

    from clipseek.server import create_app

    with TestClient(create_app(db, encoder, **app_options), base_url=base_url) as c:
        yield c


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


SIGLIP_WORDS = WORDS + ["кошка", "Кошка", "собака", "猫", "犬", "一只猫", "γάτα", "σκύλος", "café", "cafe"]


def wait_for(cond, timeout: float = 60) -> bool:
    """Poll `cond()` every 50 ms until it is true (True) or `timeout` seconds pass (False)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


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


def cli_in_process(capsys, *args):
    """In-process `clipseek ...` (torch is imported once): (exit code, stdout, stderr)."""
    from clipseek.cli import main

    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


# ---- the page in headless Chromium ----------------------------------------------------------------
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
TOKEN = "e2e-secret"
COLORS = ["#e4572e", "#17bebb", "#ffc914", "#2e282a", "#76b041", "#3b6ef5", "#b370b0", "#f08a4b"]


def browser_or_fail():
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"Chromium not found at {CHROMIUM}: install it (apt-get install chromium; scripts/setup.sh "
                    "does as root) or set CHROMIUM_PATH; `pytest -m \"not browser\"` deselects these tests")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install -e '.[test]'")
    return sync_playwright


def shape_image(i: int, size=(200, 150)) -> Image.Image:
    img = Image.new("RGB", size, COLORS[i % len(COLORS)])
    d = ImageDraw.Draw(img)
    fg = COLORS[(i * 3 + 1) % len(COLORS)]
    box = (40 + i % 3 * 10, 25, 150 - i % 4 * 8, 125)
    (d.ellipse if i % 2 else d.rectangle)(box, fill=fg)
    return img


# ---- the eval report's schema page --------------------------------------------------------------
def keys_of(doc) -> set[str]:
    """Every dict key in a JSON document, recursively; `recall@5` counts as `recall`."""
    if isinstance(doc, dict):
        return {k.split("@")[0] for k in doc} | set().union(*map(keys_of, doc.values()))
    if isinstance(doc, list):
        return set().union(set(), *map(keys_of, doc))
    return set()


def assert_schema_documented(doc):
    """docs/eval-report.md is the home of the report schema: each key a report holds is named in its
    schema block (the page's first code block)."""
    page = (Path(__file__).resolve().parents[1] / "docs" / "eval-report.md").read_text("utf-8")
    block = page.split("```")[1]
    assert doc["schema"] in block
    missing = keys_of(doc) - set(re.findall(r"[A-Za-z_]\w*", block))
    assert not missing, f"report keys missing from the schema in docs/eval-report.md: {sorted(missing)}"
