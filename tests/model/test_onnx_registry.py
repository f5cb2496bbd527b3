"""An export folder made by `clipseek export onnx` is a cache entry too: loading its source checkpoint
with the ONNX backend uses it instead of exporting the model again (issue 25, item 3)."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from conftest import make_image

from clipseek.model import export as export_mod
from clipseek.model import onnx_store
from clipseek.model.loader import export_onnx, load_model

TEXTS = ["a photo of the cat", "red circle", "zebra"]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CLIPSEEK_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def exports(monkeypatch):
    """Counts the exports made from now on (explicit ones included)."""
    made = []
    real = export_mod.export_encoder

    def counting(enc, out, *args, **kwargs):
        made.append(str(out))
        return real(enc, out, *args, **kwargs)

    monkeypatch.setattr(export_mod, "export_encoder", counting)
    return made


def _cached_exports(cache):
    return sorted(p.parent.name for p in (cache / "onnx").glob("*/clipseek-onnx.json"))


def test_the_source_checkpoint_uses_its_export_folder(tiny_ckpt, cache, exports, tmp_path):
    out = tmp_path / "b32-onnx"
    export_onnx(tiny_ckpt, str(out))
    assert len(exports) == 1
    enc = load_model(tiny_ckpt, backend="onnx")
    assert len(exports) == 1 and enc.folder.resolve() == out.resolve()  # not exported again
    assert _cached_exports(cache) == []
    direct = load_model(str(out), backend="onnx")
    images = [make_image(i, (40, 30)) for i in range(3)]
    assert np.array_equal(enc.encode_texts(TEXTS), direct.encode_texts(TEXTS))
    assert np.array_equal(enc.encode_images(images), direct.encode_images(images))
    ref = load_model(tiny_ckpt, device="cpu")
    assert enc.fingerprint.same_weights(ref.fingerprint) and enc.fingerprint.name == tiny_ckpt
    # the same weights elsewhere (a local checkpoint is known by its content) find it too
    copy = tmp_path / "copy-of-ckpt"
    shutil.copytree(tiny_ckpt, copy)
    assert load_model(str(copy), backend="onnx").folder.resolve() == out.resolve() and len(exports) == 1


@pytest.mark.parametrize("change", ["removed", "damaged", "replaced"])
def test_a_registered_folder_that_is_gone_or_changed_is_not_used(change, tiny_ckpt, cache, exports, tmp_path,
                                                                 tiny_siglip_ckpt):
    out = tmp_path / "exported"
    export_onnx(tiny_ckpt, str(out))
    if change == "removed":
        shutil.rmtree(out)
    elif change == "damaged":
        data = bytearray((out / "text.onnx.data").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (out / "text.onnx.data").write_bytes(bytes(data))
    else:  # the folder now holds the export of another model
        export_onnx(tiny_siglip_ckpt, str(out))
    enc = load_model(tiny_ckpt, backend="onnx")
    assert enc.folder.resolve() != out.resolve() and len(_cached_exports(cache)) == 1
    key = onnx_store.manifest_key(enc.manifest)
    assert str(out.resolve()) not in map(str, onnx_store.registered_exports(key))  # dropped
    ref = load_model(tiny_ckpt, device="cpu")
    assert np.sum(enc.encode_texts(TEXTS) * ref.encode_texts(TEXTS), axis=1).min() >= 0.99999


def test_an_fp32_export_folder_does_not_serve_an_int8_run(tiny_ckpt, cache, exports, tmp_path):
    out = tmp_path / "fp32-only"
    export_onnx(tiny_ckpt, str(out))
    enc = load_model(tiny_ckpt, backend="onnx", dtype="int8")
    assert enc.dtype_name == "int8" and enc.folder.resolve() != out.resolve()
    key = onnx_store.manifest_key(enc.manifest)
    assert [p.resolve() for p in onnx_store.registered_exports(key)] == [out.resolve()]  # kept for fp32


def test_the_first_export_says_once_how_to_avoid_it(tiny_ckpt, cache, caplog):
    with caplog.at_level(logging.INFO, logger="clipseek.model"):
        load_model(tiny_ckpt, backend="onnx")
    notes = [r.getMessage() for r in caplog.records if getattr(r, "always", False)]
    assert len(notes) == 1 and f"clipseek export onnx {tiny_ckpt} DIR" in notes[0] and "\n" not in notes[0]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="clipseek.model"):
        load_model(tiny_ckpt, backend="onnx")
    assert not caplog.records  # found in the cache: nothing to say
