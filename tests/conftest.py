"""Shared fixtures: a tiny CLIP checkpoint built once per session, a fast fake encoder (no torch),
generated images and galleries, the CLI in a subprocess, and a live server. No network."""

from __future__ import annotations

import os

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

import pytest

from helpers import (  # noqa: F401 - the helpers, for tests that still import them from here
    SIGLIP_WORDS,
    WORDS,
    FakeEncoder,
    cli_env,
    image_folder,
    indexed_gallery,
    live_server,
    make_image,
    read_shards,
    run_cli,
    wait_for,
    write_parquet_dataset,
)


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


@pytest.fixture(scope="session")
def fake_encoder() -> FakeEncoder:
    return FakeEncoder()


@pytest.fixture
def image_dir(tmp_path):
    """A small folder of varied images, including a nested subfolder."""
    d = tmp_path / "imgs"
    (d / "sub").mkdir(parents=True)
    for i in range(5):
        make_image(i, (40 + 8 * i, 36)).save(d / f"img{i}.png")
    make_image(9, (64, 48)).save(d / "sub" / "deep.jpg", quality=90)
    return d


@pytest.fixture(scope="session")
def tiny_siglip_ckpt(tmp_path_factory) -> str:
    from tiny_siglip import save_tiny_siglip

    return save_tiny_siglip(str(tmp_path_factory.mktemp("tiny-siglip")), SIGLIP_WORDS, seed=0)


@pytest.fixture(scope="session")
def siglip_encoder(tiny_siglip_ckpt):
    from clipseek import load_model

    return load_model(tiny_siglip_ckpt, device="cpu")


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
