"""The Encoder protocol: the real backend and the tests' fake offer the same names, with the same kinds."""

import numpy as np
import pytest

from clipseek.core.preprocess import PreprocessCfg
from clipseek.model.base import Encoder
from clipseek.model.fingerprint import Fingerprint
from clipseek.model.hf import HFEncoder
from helpers import FakeEncoder, make_image

ATTRIBUTE_TYPES = {"name": str, "device": str, "dtype_name": str, "dim": int, "logit_scale": float,
                   "logit_bias": (float, type(None)),
                   "fingerprint": Fingerprint, "preprocess_cfg": PreprocessCfg}
METHODS = {"preprocess", "encode_pixels", "encode_images", "encode_texts"}


def members() -> set[str]:
    methods = {k for k, v in vars(Encoder).items() if callable(v) and not k.startswith("_")}
    return set(Encoder.__annotations__) | methods


def test_protocol_names_what_callers_read():
    assert members() == set(ATTRIBUTE_TYPES) | METHODS


@pytest.fixture(params=["hf", "fake"])
def any_encoder(request, encoder, fake_encoder):
    return encoder if request.param == "hf" else fake_encoder


def test_both_satisfy_the_protocol(any_encoder):
    assert isinstance(any_encoder, Encoder)
    for name, kind in ATTRIBUTE_TYPES.items():
        assert isinstance(getattr(any_encoder, name), kind), name
    for name in METHODS:
        assert callable(getattr(any_encoder, name)), name
    assert any_encoder.fingerprint.dtype == any_encoder.dtype_name
    assert any_encoder.fingerprint.name == any_encoder.name


def test_the_fake_has_the_protocol_and_nothing_more(fake_encoder, encoder):
    public = {k for k in dir(fake_encoder) if not k.startswith("_")}
    assert public == members()
    assert members() <= {k for k in dir(encoder) if not k.startswith("_")}
    assert isinstance(encoder, HFEncoder)


def test_both_give_unit_vectors_of_their_dim(any_encoder):
    imgs = [make_image(0), make_image(1, (90, 30))]
    pixels = np.stack([any_encoder.preprocess(im) for im in imgs])
    size = any_encoder.preprocess_cfg.input_size
    assert pixels.dtype == np.float32 and pixels.shape == (2, 3, size, size)
    for v in (any_encoder.encode_texts(["a cat", "a red car", "dog"]), any_encoder.encode_images(imgs),
              any_encoder.encode_pixels(pixels)):
        assert v.dtype == np.float32 and v.shape[1] == any_encoder.dim
        assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert np.allclose(any_encoder.encode_images(imgs), any_encoder.encode_pixels(pixels), atol=1e-5)
    assert any_encoder.encode_texts([]).shape == any_encoder.encode_images([]).shape == (0, any_encoder.dim)


def test_the_fake_is_deterministic_and_tells_inputs_apart():
    a, b = FakeEncoder(), FakeEncoder()
    t = a.encode_texts(["red car", "dog", "red car"])
    assert np.array_equal(t, b.encode_texts(["red car", "dog", "red car"]))
    assert np.array_equal(t[0], t[2]) and float(t[0] @ t[1]) < 0.9
    i = a.encode_images([make_image(3), make_image(4), make_image(3)])
    assert np.array_equal(i, b.encode_images([make_image(3), make_image(4), make_image(3)]))
    assert np.array_equal(i[0], i[2]) and float(i[0] @ i[1]) < 0.9
    assert FakeEncoder(name="other").fingerprint != a.fingerprint
    assert not FakeEncoder(name="other").fingerprint.same_weights(a.fingerprint)
