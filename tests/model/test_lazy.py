"""LazyEncoder: the model is loaded on first use only, once, and must have the weights it stands for."""

import threading

import numpy as np
import pytest
from conftest import FakeEncoder

from clipseek.errors import ModelMismatchError
from clipseek.model.fingerprint import Fingerprint
from clipseek.model.lazy import LazyEncoder


def test_nothing_is_loaded_until_the_model_is_needed_then_once():
    real, loads = FakeEncoder(), []

    def load():
        loads.append(1)
        return real

    lazy = LazyEncoder(real.fingerprint, real.dim, load)
    assert (lazy.fingerprint, lazy.dim, lazy.loaded, loads) == (real.fingerprint, real.dim, False, [])
    threads = [threading.Thread(target=lambda: lazy.preprocess_cfg) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert loads == [1] and lazy.loaded and lazy.preprocess_cfg == real.preprocess_cfg
    assert np.array_equal(lazy.encode_texts(["a cat"]), real.encode_texts(["a cat"]))


def test_a_model_whose_weights_changed_is_refused():
    real = FakeEncoder()
    other = Fingerprint("somewhere/else", "0123abcd", "torch", "float32", real.preprocess_cfg.describe())
    lazy = LazyEncoder(other, real.dim, lambda: real)
    with pytest.raises(ModelMismatchError, match="weights changed"):
        lazy.encode_texts(["a cat"])
