import numpy as np
import pytest
from transformers import AutoImageProcessor, CLIPModel

from clipseek import load_model
from clipseek.core.preprocess import letterbox
from clipseek.errors import ModelLoadError, UsageError
from helpers import make_image


def test_vectors_are_unit_float32(encoder):
    t = encoder.encode_texts(["a photo of a cat", "dog", "a big red house"])
    i = encoder.encode_images([make_image(0), make_image(1, (90, 30))])
    for v in (t, i):
        assert v.dtype == np.float32 and v.shape[1] == encoder.dim
        assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)


def test_matches_plain_transformers(tiny_ckpt, encoder):
    import torch

    model = CLIPModel.from_pretrained(tiny_ckpt).eval()
    proc = AutoImageProcessor.from_pretrained(tiny_ckpt)
    img = make_image(5, (70, 41))
    pix = proc(images=img, return_tensors="pt")["pixel_values"]
    assert np.abs(pix[0].numpy() - encoder.preprocess(img)).max() < 1e-5
    with torch.no_grad():
        out = model.get_image_features(pixel_values=pix)
    ref = (out if hasattr(out, "shape") else out.pooler_output)[0].numpy()
    assert np.dot(ref / np.linalg.norm(ref), encoder.encode_images([img])[0]) > 0.99999


def test_text_batching_does_not_change_vectors(encoder):
    texts = ["a cat", "a photo of a big green tree", "dog", "a small blue boat on the red house"]
    assert np.allclose(encoder.encode_texts(texts, batch_size=1), encoder.encode_texts(texts), atol=1e-5)


def test_pad_framing_keeps_edges(tiny_ckpt):
    enc = load_model(tiny_ckpt, framing="pad")
    assert enc.fingerprint.framing == "pad" and enc.fingerprint.preprocess.startswith("pad-")
    wide = make_image(0, (120, 30))
    boxed = letterbox(wide, (0, 0, 0))
    assert boxed.size == (120, 120) and np.asarray(boxed)[45:75].any()
    assert enc.preprocess(wide).shape == (3, 32, 32)


def test_bf16(tiny_ckpt, encoder):
    enc = load_model(tiny_ckpt, dtype="bf16")
    img = [make_image(3)]
    assert enc.fingerprint.dtype == enc.dtype_name == "bfloat16"
    assert float(enc.encode_images(img)[0] @ encoder.encode_images(img)[0]) > 0.98


def test_fingerprint_changes_with_weights(tiny_ckpt, tmp_path, encoder):
    import shutil

    copy = tmp_path / "ft"
    shutil.copytree(tiny_ckpt, copy)
    m = CLIPModel.from_pretrained(copy)
    with __import__("torch").no_grad():
        m.visual_projection.weight.mul_(2.0)
    m.save_pretrained(copy)
    changed = load_model(str(copy)).fingerprint
    assert changed.local and changed.identity != encoder.fingerprint.identity
    assert not changed.same_weights(encoder.fingerprint)
    same = tmp_path / "same"  # the same files by another path: the same weights
    shutil.copytree(tiny_ckpt, same)
    assert load_model(str(same)).fingerprint.same_weights(encoder.fingerprint)


def test_missing_dir_and_non_checkpoint(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        load_model(str(tmp_path / "nope"))
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(str(tmp_path))


def test_hub_unreachable_gives_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="`--model clipseek-demo` works offline.*checkpoint folder"):
        load_model("someone/clip-model-that-is-not-cached")


def test_unknown_dtype(tiny_ckpt):
    with pytest.raises(UsageError, match="unknown dtype"):  # a bad argument (exit 2)
        load_model(tiny_ckpt, dtype="fp8")
