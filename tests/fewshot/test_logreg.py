"""fewshot.logreg: the numpy softmax regression against scikit-learn's LogisticRegression, and the
penalty towards a starting point (the text classifier) against a direct gradient."""

import numpy as np
import pytest

from clipseek.fewshot.logreg import fit_softmax, predict_proba
from gaussians import Task


def data(n=240, seed=0):
    x, y = Task(n_classes=4, dim=12, separation=1.5, seed=seed).sample(n)
    return x.astype(np.float64), y


@pytest.mark.parametrize("l2", [1e-3, 1e-1, 1.0])
def test_matches_sklearn_without_bias(l2):
    from sklearn.linear_model import LogisticRegression

    x, y = data()
    ours = fit_softmax(x, y, 4, l2, fit_bias=False, tol=1e-10, max_iter=5000)
    # sklearn minimises 1/2 ||w||^2 + C * sum CE, i.e. mean CE + 1/(2 C n) ||w||^2: C = 1 / (l2 n)
    ref = LogisticRegression(C=1 / (l2 * len(y)), fit_intercept=False, tol=1e-12, max_iter=100000).fit(x, y)
    assert ours.converged
    zero = np.zeros((4, 12))
    ours_f = objective(ours.weights, np.zeros(4), x, y, l2, zero, np.zeros(4))
    assert ours_f <= objective(ref.coef_, np.zeros(4), x, y, l2, zero, np.zeros(4)) + 1e-10
    np.testing.assert_allclose(ours.weights, ref.coef_, atol=1e-4 * max(1.0, np.abs(ref.coef_).max()))
    np.testing.assert_allclose(predict_proba(ours, x), ref.predict_proba(x), atol=1e-5)


def test_penalised_bias_matches_sklearn_on_a_constant_column():
    from sklearn.linear_model import LogisticRegression

    x, y = data(seed=1)
    ours = fit_softmax(x, y, 4, 0.01, tol=1e-10, max_iter=5000)
    xa = np.c_[x, np.ones(len(x))]   # sklearn penalises this column's weight as we penalise the bias
    ref = LogisticRegression(C=1 / (0.01 * len(y)), fit_intercept=False, tol=1e-12, max_iter=100000).fit(xa, y)
    np.testing.assert_allclose(ours.weights, ref.coef_[:, :-1], atol=1e-4)
    np.testing.assert_allclose(ours.bias, ref.coef_[:, -1], atol=1e-4)


def objective(w, b, x, y, l2, w0, b0):
    z = x @ w.T + b
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -logp[np.arange(len(y)), y].mean() + l2 / 2 * (((w - w0) ** 2).sum() + ((b - b0) ** 2).sum())


def test_optimum_of_the_penalty_towards_a_start():
    """With W0 != 0 the fit is the minimum of the written objective: every coordinate's finite
    difference is ~0, and a strong penalty keeps W0."""
    x, y = data(seed=2)
    rng = np.random.default_rng(3)
    w0, b0 = 5 * rng.standard_normal((4, 12)), np.zeros(4)
    fit = fit_softmax(x, y, 4, 0.05, w0=w0, tol=1e-10, max_iter=5000)
    f0 = objective(fit.weights, fit.bias, x, y, 0.05, w0, b0)
    eps = 1e-5
    for i, j in [(0, 0), (1, 5), (3, 11)]:
        w = fit.weights.copy()
        w[i, j] += eps
        assert abs(objective(w, fit.bias, x, y, 0.05, w0, b0) - f0) < 1e-8
    assert objective(w0, b0, x, y, 0.05, w0, b0) > f0
    strong = fit_softmax(x, y, 4, 1e6, w0=w0)
    np.testing.assert_allclose(strong.weights, w0, atol=1e-4)


def test_warm_start_reaches_the_same_optimum():
    x, y = data(seed=4)
    cold = fit_softmax(x, y, 4, 0.01, tol=1e-10, max_iter=5000)
    warm = fit_softmax(x, y, 4, 0.01, start=fit_softmax(x, y, 4, 1.0), tol=1e-10, max_iter=5000)
    np.testing.assert_allclose(warm.weights, cold.weights, atol=1e-4)
