"""Multinomial logistic regression in numpy: L2 penalty towards a starting point, solved with L-BFGS.

    minimise   mean_i CE(softmax(x_i W^T + b), y_i)  +  l2/2 * (||W - W0||^2 + ||b - b0||^2)

With W0 = 0 and no bias this is scikit-learn's `LogisticRegression(C=1 / (l2 * n))` (checked in the
tests). With W0 = the text classifier (scaled by the model's logit scale) it is the few-shot head: a
strong penalty keeps the zero-shot classifier, a weak one lets the examples move it, and a class with
no example keeps its text weights. The bias is penalised too, towards b0: otherwise a class without
examples (only a name) would have its bias pushed to minus infinity by the other classes' examples.

The objective is smooth and strictly convex, so a limited-memory BFGS with a backtracking (Armijo) line
search converges to the one optimum; nothing here depends on scipy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clipseek.core.scores import log_softmax, softmax


@dataclass
class LogRegFit:
    weights: np.ndarray   # (C, D)
    bias: np.ndarray      # (C,)
    iterations: int
    converged: bool


def _objective(theta, x, onehot, l2, w0, b0, fit_bias):
    c, d = w0.shape
    w = theta[: c * d].reshape(c, d)
    b = theta[c * d:] if fit_bias else np.zeros(c)
    z = x @ w.T + b
    logp = log_softmax(z)
    n = len(x)
    loss = -(onehot * logp).sum() / n
    dw, db = w - w0, b - b0
    loss += 0.5 * l2 * ((dw * dw).sum() + ((db * db).sum() if fit_bias else 0.0))
    g = (np.exp(logp) - onehot) / n                      # d loss / d z
    grad_w = g.T @ x + l2 * dw
    if not fit_bias:
        return loss, grad_w.ravel()
    return loss, np.concatenate([grad_w.ravel(), g.sum(axis=0) + l2 * db])


def _lbfgs(fun, theta, max_iter: int, tol: float, memory: int = 10):
    """Minimise a smooth convex `fun(theta) -> (value, gradient)`; (theta, iterations, converged)."""
    f, g = fun(theta)
    s_hist: list[np.ndarray] = []
    y_hist: list[np.ndarray] = []
    for it in range(1, max_iter + 1):
        if np.abs(g).max() <= tol:
            return theta, it - 1, True
        q = g.copy()                                    # two-loop recursion: q = H g
        alphas = []
        for s, yv in zip(reversed(s_hist), reversed(y_hist)):
            a = (s @ q) / (yv @ s)
            alphas.append(a)
            q -= a * yv
        if s_hist:
            q *= (s_hist[-1] @ y_hist[-1]) / (y_hist[-1] @ y_hist[-1])
        else:
            q /= max(np.linalg.norm(g), 1.0)
        for (s, yv), a in zip(zip(s_hist, y_hist), reversed(alphas)):
            q += s * (a - (yv @ q) / (yv @ s))
        direction = -q
        slope = g @ direction
        if slope >= 0:                                  # not a descent direction: restart
            s_hist.clear(), y_hist.clear()
            direction, slope = -g, -(g @ g)
        step = 1.0
        for _ in range(40):                             # Armijo backtracking
            new = theta + step * direction
            f_new, g_new = fun(new)
            if f_new <= f + 1e-4 * step * slope:
                break
            step *= 0.5
        else:
            return theta, it, False                     # no decrease possible: at the optimum to rounding
        s, yv = new - theta, g_new - g
        if s @ yv > 1e-12:
            s_hist.append(s)
            y_hist.append(yv)
            if len(s_hist) > memory:
                s_hist.pop(0), y_hist.pop(0)
        converged = abs(f - f_new) <= 1e-12 * max(1.0, abs(f))
        theta, f, g = new, f_new, g_new
        if converged:
            return theta, it, True
    return theta, max_iter, bool(np.abs(g).max() <= tol)


def fit_softmax(x: np.ndarray, y: np.ndarray, n_classes: int, l2: float, w0: np.ndarray | None = None,
                b0: np.ndarray | None = None, fit_bias: bool = True, start: LogRegFit | None = None,
                max_iter: int = 500, tol: float = 1e-6) -> LogRegFit:
    """Fit the penalised softmax regression above. `start`: a previous fit to continue from (a warm
    start along a path of penalties); by default it starts at (W0, b0)."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.int64)
    d = x.shape[1]
    w0 = np.zeros((n_classes, d)) if w0 is None else np.asarray(w0, np.float64)
    b0 = np.zeros(n_classes) if b0 is None else np.asarray(b0, np.float64)
    onehot = np.zeros((len(y), n_classes))
    onehot[np.arange(len(y)), y] = 1.0
    if start is not None:
        theta = np.concatenate([start.weights.ravel(), start.bias]) if fit_bias else start.weights.ravel()
    else:
        theta = np.concatenate([w0.ravel(), b0]) if fit_bias else w0.ravel().copy()
    theta = theta.astype(np.float64)
    theta, its, ok = _lbfgs(lambda t: _objective(t, x, onehot, l2, w0, b0, fit_bias), theta, max_iter, tol)
    w = theta[: n_classes * d].reshape(n_classes, d)
    b = theta[n_classes * d:] if fit_bias else np.zeros(n_classes)
    return LogRegFit(w, b.copy(), its, ok)


def predict_proba(fit: LogRegFit, x: np.ndarray) -> np.ndarray:
    return softmax(np.asarray(x, np.float64) @ fit.weights.T + fit.bias)
