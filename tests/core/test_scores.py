"""Scores -> probabilities: CLIP's softmax over labels, SigLIP's sigmoid per label."""

import warnings

import numpy as np
import pytest

from clipseek.core.scores import logits, probabilities, scoring, sigmoid, softmax


def unit_rows(rng, n, d=8):
    v = rng.standard_normal((n, d))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_sigmoid_is_the_logistic_function_without_overflow():
    x = np.array([-3.0, -0.5, 0.0, 0.5, 3.0])
    assert np.allclose(sigmoid(x), 1 / (1 + np.exp(-x)), atol=1e-15)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow in exp for huge logits
        out = sigmoid(np.array([-1e4, 1e4]))
    assert out.tolist() == [0.0, 1.0]


def test_clip_rows_are_one_distribution_siglip_labels_are_independent():
    rng = np.random.default_rng(0)
    img, cls = unit_rows(rng, 3), unit_rows(rng, 4)
    cos = img @ cls.T
    clip = probabilities(img, cls, 100.0)
    assert np.allclose(clip, softmax(100.0 * cos)) and np.allclose(clip.sum(1), 1)
    sig = probabilities(img, cls, 10.0, -2.0)
    assert np.allclose(sig, 1 / (1 + np.exp(-(10.0 * cos - 2.0))), atol=1e-12)
    assert not np.allclose(sig.sum(1), 1)
    # a label's SigLIP probability does not depend on which other labels are asked about
    assert np.allclose(probabilities(img, cls[:2], 10.0, -2.0), sig[:, :2])
    assert np.allclose(logits(img, cls, 10.0, -2.0), 10.0 * cos - 2.0)
    assert (scoring(None), scoring(-2.0), scoring(0.0)) == ("softmax", "sigmoid", "sigmoid")


@pytest.mark.parametrize("bias", [None, -5.0])
def test_same_ranking_under_both_rules(bias):
    rng = np.random.default_rng(1)
    img, cls = unit_rows(rng, 5), unit_rows(rng, 6)
    assert (probabilities(img, cls, 20.0, bias).argmax(1) == (img @ cls.T).argmax(1)).all()
