"""Scores to probabilities and rankings: the one softmax (and log-softmax), the sigmoid of SigLIP-style
models, top-k every job uses, and temperature scaling (`fit_temperature`: the NLL-optimal T of a set
of logits, for evaluation's calibration and a fitted few-shot classifier alike).

A model scores an (image, label) pair with the logit `logit_scale * cos + logit_bias`. CLIP has no bias
and turns a row of logits into one distribution over the labels (softmax: the probabilities sum to 1);
SigLIP and SigLIP 2 were trained with a learned bias and a per-pair sigmoid, so each label gets an
independent probability (a row need not sum to 1). `probabilities` picks the rule from `logit_bias`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, computed stably (the row maximum subtracted first)."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log of `softmax`, computed without taking the log of an underflowed probability."""
    z = logits - logits.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Element-wise logistic function, without overflow for large negative or positive logits."""
    x = np.asarray(logits, np.float64)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def logits(image_vecs: np.ndarray, class_vecs: np.ndarray, logit_scale: float,
           logit_bias: float | None = None) -> np.ndarray:
    """(N, L) `logit_scale * cos(image, class) (+ logit_bias)`, in float64."""
    z = logit_scale * (image_vecs.astype(np.float64) @ class_vecs.astype(np.float64).T)
    return z if logit_bias is None else z + logit_bias


def scoring(logit_bias: float | None) -> str:
    """How a model's logits become probabilities: "softmax" (CLIP) or "sigmoid" (SigLIP, SigLIP 2)."""
    return "softmax" if logit_bias is None else "sigmoid"


def probabilities(image_vecs: np.ndarray, class_vecs: np.ndarray, logit_scale: float,
                  logit_bias: float | None = None) -> np.ndarray:
    """The model's own probabilities for images x labels: with no `logit_bias` (CLIP),
    softmax(logit_scale * cos) over the labels, rows summing to 1; with one (SigLIP),
    sigmoid(logit_scale * cos + logit_bias) for each label on its own."""
    z = logits(image_vecs, class_vecs, logit_scale, logit_bias)
    return softmax(z) if logit_bias is None else sigmoid(z)


def top_k(probs: np.ndarray, labels: Sequence[str], k: int) -> list[list[tuple[str, float]]]:
    k = max(1, min(k, len(labels)))
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [[(labels[j], float(row[j])) for j in idx] for row, idx in zip(probs, order)]


# ---------------------------------------------------------------- temperature
def nll(logits: np.ndarray, y_true) -> float:
    logp = log_softmax(logits)
    return float(-logp[np.arange(len(logp)), np.asarray(y_true)].mean())


def binary_nll(logits: np.ndarray, y_true) -> float:
    """Mean binary cross-entropy of sigmoid(logits) against one-hot targets, per (image, label) pair."""
    z = np.asarray(logits, np.float64)
    target = np.zeros_like(z)
    target[np.arange(len(z)), np.asarray(y_true)] = 1.0
    softplus = np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))  # log(1 + e^z), without overflow
    return float((softplus - target * z).mean())


RULES = {"softmax": (softmax, nll), "sigmoid": (sigmoid, binary_nll)}  # scoring -> (probabilities, NLL)


def fit_temperature(logits: np.ndarray, y_true, lo: float = 1e-2, hi: float = 1e2,
                    rule: str = "softmax") -> float:
    """T minimising the NLL of the rule's probabilities of logits / T. Both NLLs are convex in 1/T, so
    a golden-section search over log(1/T) finds the optimum; T is clipped to [lo, hi]."""
    y = np.asarray(y_true)
    if len(y) == 0:
        return 1.0
    loss = RULES[rule][1]
    f = lambda a: loss(logits * np.exp(a), y)  # noqa: E731  a = log(1/T)
    a, b = -np.log(hi), -np.log(lo)
    g = (np.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(80):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    return float(np.exp(-(a + b) / 2))
