"""Scores to probabilities and rankings: the one softmax (and log-softmax) and top-k every job uses."""

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


def probabilities(image_vecs: np.ndarray, class_vecs: np.ndarray, logit_scale: float) -> np.ndarray:
    """softmax(logit_scale * cos(image, class)) over classes; rows sum to 1."""
    return softmax(logit_scale * (image_vecs.astype(np.float64) @ class_vecs.astype(np.float64).T))


def top_k(probs: np.ndarray, labels: Sequence[str], k: int) -> list[list[tuple[str, float]]]:
    k = max(1, min(k, len(labels)))
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [[(labels[j], float(row[j])) for j in idx] for row, idx in zip(probs, order)]
