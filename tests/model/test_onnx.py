"""The ONNX Runtime backend: parity with torch, the export folder, the cache and its checks, the choice
of backend, and the failures the issue lists (an export that fails, a corrupt cache, two exporters)."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from clipseek.errors import ModelLoadError, UsageError
from clipseek.model import onnx_store
from clipseek.model.loader import choose_backend, cpu_has_bf16, export_onnx, load_model
from helpers import WORDS, make_image

TEXTS = ["a photo of the cat", "red circle", "a big blue boat on the green tree house",
         " ".join(WORDS * 4), "zebra", ""]  # longer than the model's 32 tokens: truncated alike


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A private cache folder for this module's exports (the export of a checkpoint is kept there)."""
    old = os.environ.get("CLIPSEEK_CACHE")
    os.environ["CLIPSEEK_CACHE"] = str(tmp_path_factory.mktemp("onnx-cache"))
    yield Path(os.environ["CLIPSEEK_CACHE"])
    if old is None:
        os.environ.pop("CLIPSEEK_CACHE")
    else:
        os.environ["CLIPSEEK_CACHE"] = old


def _images():
    return [make_image(i, (40 + 9 * i, 30 + 5 * i)) for i in range(5)]


@pytest.mark.parametrize("which", ["tiny", "bundled"])
def test_fp32_vectors_match_torch(which, tiny_ckpt, cache):
    name = tiny_ckpt if which == "tiny" else "clipseek-demo"
    ref, enc = load_model(name, device="cpu"), load_model(name, backend="onnx")
    from clipseek.model.base import Encoder

    assert enc.backend == "onnx" and type(enc).__name__ == "OnnxEncoder" and isinstance(enc, Encoder)
    assert enc.logit_bias is None and ref.logit_bias is None  # CLIP: softmax scoring
    for a, b in ((ref.encode_images(_images()), enc.encode_images(_images())),
                 (ref.encode_texts(TEXTS), enc.encode_texts(TEXTS))):
        assert a.shape == b.shape and b.dtype == np.float32
        assert np.sum(a * b, axis=1).min() >= 0.99999
    assert (enc.dim, enc.preprocess_cfg) == (ref.dim, ref.preprocess_cfg)
    assert enc.logit_scale == pytest.approx(ref.logit_scale, rel=1e-6)
    # same weights, another runtime: float32 vectors may be mixed
    assert enc.fingerprint.identity == ref.fingerprint.identity and enc.fingerprint.name == ref.fingerprint.name
    assert enc.fingerprint.backend == "onnx" and enc.fingerprint.same_weights(ref.fingerprint)
    assert enc.encode_texts([]).shape == (0, enc.dim) and enc.encode_images([]).shape == (0, enc.dim)


def test_int8_towers_are_close_and_recorded_as_int8(tiny_ckpt, cache):
    fp32, enc = load_model(tiny_ckpt, backend="onnx"), load_model(tiny_ckpt, backend="onnx", dtype="int8",
                                                                    int8_text=True)
    assert enc.dtype_name == "int8" and enc.fingerprint.dtype == "int8"
    assert not enc.fingerprint.same_weights(fp32.fingerprint)  # int8 vectors are runtime-specific
    assert np.sum(fp32.encode_images(_images()) * enc.encode_images(_images()), axis=1).min() > 0.98
    assert np.sum(fp32.encode_texts(TEXTS) * enc.encode_texts(TEXTS), axis=1).min() > 0.98
    folder = enc.folder
    assert {"image.int8.onnx", "text.int8.onnx", "image.onnx"} <= set(json.loads(
        (folder / onnx_store.MANIFEST).read_text())["files"])


def test_export_folder_is_self_contained_and_loads_by_path(tiny_ckpt, cache, tmp_path):
    out = tmp_path / "exported"
    doc = export_onnx(tiny_ckpt, str(out), int8=True)
    ref = load_model(tiny_ckpt, device="cpu")
    assert doc["source"] == tiny_ckpt and doc["fingerprint"] == str(ref.fingerprint)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted(
        ["clipseek-onnx.json", "tokenizer.json", "preprocessor_config.json"]
        + [f"{t}{q}.onnx{d}" for t in ("image", "text") for q in ("", ".int8") for d in ("", ".data")])
    for backend in ("onnx", "auto"):
        enc = load_model(str(out), backend=backend)
        assert enc.backend == "onnx" and enc.fingerprint.same_weights(ref.fingerprint)
        assert np.sum(enc.encode_texts(TEXTS) * ref.encode_texts(TEXTS), axis=1).min() >= 0.99999
    with pytest.raises(UsageError, match="ONNX export folder"):
        load_model(str(out), backend="torch")
    export_onnx(tiny_ckpt, str(out))  # an earlier export is replaced
    assert not (out / "image.int8.onnx").exists()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="not an ONNX export folder"):
        export_onnx(tiny_ckpt, str(tmp_path / "busy"))
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("damage", ["flip", "truncate", "manifest"])
def test_a_corrupt_cached_export_is_detected_and_redone(damage, tiny_ckpt, cache, caplog):
    folder = load_model(tiny_ckpt, backend="onnx").folder
    target = folder / ("text.onnx.data" if damage != "manifest" else onnx_store.MANIFEST)  # the weights
    data = bytearray(target.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    elif damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data = data[:10]
    target.write_bytes(bytes(data))
    with pytest.raises(onnx_store.CorruptExport):
        onnx_store.read_manifest(folder)
    with caplog.at_level(logging.INFO, logger="clipseek.model"):
        enc = load_model(tiny_ckpt, backend="onnx")
    assert "exporting it again" in caplog.text and "exporting" in caplog.text
    onnx_store.read_manifest(enc.folder)  # whole again
    ref = load_model(tiny_ckpt, device="cpu")
    assert np.sum(enc.encode_texts(TEXTS) * ref.encode_texts(TEXTS), axis=1).min() >= 0.99999


def test_a_corrupt_export_folder_given_by_path_is_an_error(tiny_ckpt, cache, tmp_path):
    out = tmp_path / "exported"
    export_onnx(tiny_ckpt, str(out))
    data = bytearray((out / "image.onnx").read_bytes())
    data[-100] ^= 0xFF
    (out / "image.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="checksum.*export it again"):
        load_model(str(out), backend="onnx")


def test_an_export_failure_falls_back_to_torch_with_auto_and_fails_with_onnx(tiny_ckpt, tmp_path,
                                                                            monkeypatch, caplog):
    import torch

    monkeypatch.setenv("CLIPSEEK_CACHE", str(tmp_path / "cache"))

    def unsupported(*a, **k):
        raise RuntimeError("Unsupported: ONNX export of operator aten::custom_op")

    monkeypatch.setattr(torch.onnx, "export", unsupported)
    with pytest.raises(ModelLoadError, match=f"cannot export {re.escape(tiny_ckpt)} to ONNX.*aten::custom_op"):
        load_model(tiny_ckpt, backend="onnx")
    with caplog.at_level(logging.WARNING, logger="clipseek.model"):
        enc = load_model(tiny_ckpt, backend="auto", device="cpu")
    assert enc.fingerprint.backend == "torch"
    notes = [r.getMessage() for r in caplog.records if r.name == "clipseek.model" and r.levelno >= logging.WARNING]
    assert len(notes) == 1 and tiny_ckpt in notes[0] and "using the torch backend" in notes[0]
    assert not any((tmp_path / "cache" / "onnx").glob("*/clipseek-onnx.json"))  # nothing half-made kept


def test_two_processes_exporting_at_once_leave_one_good_export(tiny_ckpt, tmp_path):
    code = ("import sys; from clipseek.model.loader import load_model; "
            "e = load_model(sys.argv[1], backend='onnx'); print(e.folder)")
    env = {**os.environ, "CLIPSEEK_CACHE": str(tmp_path / "cache"), "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [subprocess.Popen([sys.executable, "-c", code, tiny_ckpt], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    folders = {o[0].strip() for o in outs}
    assert len(folders) == 1
    folder = Path(folders.pop())
    onnx_store.read_manifest(folder)
    assert [p.name for p in folder.parent.iterdir() if p.name.startswith(".")] == []  # no temp left


def test_choose_backend():
    assert choose_backend("torch", "auto", "auto") == "torch"
    assert choose_backend("onnx", "cpu", "fp32") == "onnx"
    assert choose_backend("auto", "cuda", "auto") == "torch"
    assert choose_backend("auto", "cpu", "fp16") == "torch"   # ONNX runs fp32 and int8 only
    assert choose_backend("auto", "cpu", "int8") == "onnx"
    for bad in [("tensorrt", "cpu", "auto"), ("onnx", "cuda", "auto"), ("onnx", "cpu", "bf16")]:
        with pytest.raises(UsageError):
            choose_backend(*bad)


def test_without_onnxruntime_onnx_is_a_usage_error_and_auto_means_torch(tiny_ckpt, tmp_path, monkeypatch):
    from clipseek.model import loader

    monkeypatch.setattr(loader, "onnx_available", lambda: False)
    assert choose_backend("auto", "cpu", "fp32") == "torch"
    for call in (lambda: choose_backend("onnx", "cpu", "fp32"), lambda: export_onnx(tiny_ckpt, str(tmp_path / "o"))):
        with pytest.raises(UsageError, match=r"pip install 'clipseek\[onnx\]'"):
            call()


def test_bf16_on_a_cpu_without_native_bf16_warns_and_names_faster_options(tiny_ckpt, caplog):
    assert not cpu_has_bf16("flags\t: fpu avx2 fma\n")
    assert cpu_has_bf16("flags\t: fpu avx512f avx512_bf16\n") and cpu_has_bf16("Features\t: fp asimd bf16\n")
    with caplog.at_level(logging.WARNING, logger="clipseek.model"):
        enc = load_model(tiny_ckpt, device="cpu", dtype="bf16")
    assert enc.dtype_name == "bfloat16"
    warned = "slower than fp32" in caplog.text and "--dtype int8" in caplog.text and "--backend onnx" in caplog.text
    assert warned == (not cpu_has_bf16())


def test_a_gallery_keeps_its_backend_for_int8_and_mixes_backends_for_fp32(tiny_ckpt, cache, tmp_path):
    from clipseek.gallery.gallery import Gallery

    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(4):
        make_image(i).save(d / f"{i}.png")
    with Gallery(str(tmp_path / "int8.db"), model=tiny_ckpt, device="cpu", dtype="int8") as g:
        g.index([str(d)])
    with Gallery(str(tmp_path / "int8.db"), backend="auto") as g:  # int8 vectors are runtime-specific
        assert g.encoder.fingerprint.backend == "torch" and len(g.search("red car", k=2)) == 2
    with Gallery(str(tmp_path / "fp32.db"), model=tiny_ckpt, backend="onnx") as g:
        g.index([str(d)])
        want = [r.path for r in g.search("red car", k=4)]
    with Gallery(str(tmp_path / "fp32.db"), backend="torch", device="cpu") as g:  # indexed with ONNX
        assert g.encoder.fingerprint.backend == "torch" and [r.path for r in g.search("red car", k=4)] == want
