"""fewshot.conformal: the finite-sample quantile, the RAPS score against a direct loop, coverage over
repeated calibration/test splits, and set sizes that shrink as the classifier gets better.

Tolerance (stated): over 200 random splits (500 calibration, 1,000 test images of one population) the
mean coverage is in [target - 0.01, target + 1/(n+1) + 0.01]: split conformal gives coverage >= target
and, with continuous scores, <= target + 1/(n+1) in expectation; 0.01 is Monte-Carlo room (the
standard error of the mean here is ~0.0012). The per-split spread must match theory within a factor
of 2 (Beta(k, n+1-k) for the calibration draw plus binomial noise of the test draw)."""

import math

import numpy as np
import pytest

from clipseek.core.scores import softmax
from clipseek.errors import UsageError
from clipseek.fewshot import conformal as cp
from gaussians import Task


def model_probs(separation, n=20000, seed=0, classes=10):
    """(probabilities, labels, tie-breaks) of a fixed classifier (the true centres, logit scale 10)."""
    syn = Task(n_classes=classes, dim=32, separation=separation, seed=seed)
    x, y = syn.sample(n)
    return softmax(10 * x.astype(float) @ syn.centres.T), y, cp.tiebreak(x)


def test_finite_sample_rank_and_the_examples_it_needs():
    assert cp.rank_needed(9, 0.9) == 9 and cp.rank_needed(100, 0.9) == 91
    assert cp.examples_needed(0.9) == 9 and cp.examples_needed(0.95) == 19 and cp.examples_needed(0.8) == 4
    for cov in (0.5, 0.8, 0.9, 0.95, 0.99):
        n = cp.examples_needed(cov)
        assert cp.rank_needed(n, cov) <= n and cp.rank_needed(n - 1, cov) > n - 1
    scores = np.arange(20.0)
    assert cp.quantile(scores, 0.9) == 18.0           # ceil(21 * 0.9) = 19th smallest
    with pytest.raises(UsageError, match=r"^too few calibration examples for coverage 0.95: need >= 19, have 10$"):
        cp.quantile(scores[:10], 0.95)


def test_scores_and_sets_against_a_direct_loop():
    probs, y, u = model_probs(0.6, n=300)
    lam, k_reg = 0.05, 2
    got = cp.scores(probs, y, u, lam, k_reg)
    conf = cp.Conformal(0.9, float(np.quantile(got, 0.9)), lam, k_reg, len(y))
    sets = cp.prediction_sets(probs, u, conf)
    for i in range(len(y)):
        order = sorted(range(probs.shape[1]), key=lambda j: -probs[i, j])
        def score(label, i=i, order=order):
            o = order.index(label) + 1
            return sum(probs[i, j] for j in order[:o - 1]) + u[i] * probs[i, label] + lam * max(0, o - k_reg)
        assert got[i] == pytest.approx(score(y[i]))
        want = [j for j in order if score(j) <= conf.threshold] or order[:1]
        assert sets[i].tolist() == want


def test_tiebreak_is_a_function_of_the_vector():
    x = Task().sample(5)[0]
    u = cp.tiebreak(x)
    assert ((0 <= u) & (u < 1)).all() and len(set(u)) == 5
    np.testing.assert_array_equal(cp.tiebreak(x[::-1]), u[::-1])


def test_coverage_over_repeated_splits():
    probs, y, u = model_probs(0.35)
    top1 = (probs.argmax(1) == y).mean()
    assert 0.5 < top1 < 0.85                      # a task where sets are needed to reach 90%
    target, n_cal, n_test = 0.9, 500, 1000
    rng = np.random.default_rng(1)
    cov, sizes = [], []
    for _ in range(200):
        idx = rng.permutation(len(y))
        cal, test = idx[:n_cal], idx[n_cal:n_cal + n_test]
        conf = cp.calibrate(probs[cal], y[cal], u[cal], target)
        m = cp.set_metrics(cp.prediction_sets(probs[test], u[test], conf), y[test])
        cov.append(m["coverage"])
        sizes.append(m["mean_set_size"])
    cov = np.array(cov)
    assert target - 0.01 <= cov.mean() <= target + 1 / (n_cal + 1) + 0.01
    k = cp.rank_needed(n_cal, target)
    a, b = k, n_cal + 1 - k
    theory = math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)) + target * (1 - target) / n_test)
    assert theory / 2 < cov.std() < 2 * theory
    assert (cov < target - 4 * theory).mean() < 0.02
    # top-1 alone is below the target, so sets must hold more than one label on average, yet far from all
    assert 1.0 < np.mean(sizes) < probs.shape[1] / 2


def test_sets_shrink_as_the_classifier_gets_better():
    sizes = []
    for sep in (0.2, 0.4, 1.2):
        probs, y, u = model_probs(sep, n=4000)
        conf = cp.calibrate(probs[:2000], y[:2000], u[:2000], 0.9)
        m = cp.set_metrics(cp.prediction_sets(probs[2000:], u[2000:], conf), y[2000:])
        assert m["coverage"] >= 0.88
        sizes.append(m["mean_set_size"])
    assert sizes[0] > sizes[1] > sizes[2] and sizes[2] < 1.3


def test_hard_images_get_larger_sets():
    probs, y, u = model_probs(0.35, n=4000)
    conf = cp.calibrate(probs[:2000], y[:2000], u[:2000], 0.9)
    sets = cp.prediction_sets(probs[2000:], u[2000:], conf)
    top = probs[2000:].max(axis=1)
    size = np.array([len(s) for s in sets])
    assert size[top < np.median(top)].mean() > size[top >= np.median(top)].mean()


def test_the_penalty_is_chosen_without_losing_coverage():
    probs, y, u = model_probs(0.35, n=6000)
    lam, k_reg = cp.choose_penalty(probs[:2000], y[:2000], u[:2000], 0.9)
    assert lam in cp.PENALTIES and k_reg >= 1
    conf = cp.calibrate(probs[2000:3000], y[2000:3000], u[2000:3000], 0.9, lam, k_reg)
    m = cp.set_metrics(cp.prediction_sets(probs[3000:], u[3000:], conf), y[3000:])
    assert m["coverage"] >= 0.88
