"""Split conformal prediction sets with an adaptive score (RAPS; APS when its penalty is 0).

The score of a label y for an image with probabilities p (sorted, best first; o = y's rank, 1-based):

    s(x, y) = (sum of the probabilities ranked above y) + u * p_y + lam * max(0, o - k_reg)

(Angelopoulos et al., "Uncertainty Sets for Image Classifiers using Conformal Prediction", ICLR 2021).
Hard images, whose probability is spread out, reach a given score only further down the ranking, so
they get larger sets. Given n calibration examples held out from fitting, the threshold q is the
k-th smallest of their scores with k = ceil((n + 1) * coverage), and an image's set is every label whose
score is <= q. When the calibration examples and the new image are exchangeable (drawn the same way),
the set holds the true label with probability >= coverage; with continuous scores also <= coverage +
1 / (n + 1). That needs k <= n, i.e. n >= coverage / (1 - coverage) examples; with fewer the guarantee
cannot be given and `calibrate` says so.

u in [0, 1) breaks ties as the randomised score does, but it is a hash of the image's vector, so one
image always gets the same set; it is still a fixed function of the image, so the argument above holds.
A set is never empty: the best label is always in it (this can only raise coverage).

`choose_penalty` picks (lam, k_reg) on out-of-fold predictions of the fitting examples, never on the
calibration examples, so the guarantee stands.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass

import numpy as np

from clipseek.errors import UsageError

PENALTIES = (0.0, 0.001, 0.01, 0.1, 0.2, 0.5)


@dataclass(frozen=True)
class Conformal:
    coverage: float          # the target: P(true label in set) >= coverage
    threshold: float         # q
    lam: float               # RAPS penalty per rank beyond k_reg (0: APS)
    k_reg: int
    n_calibration: int

    def to_dict(self) -> dict:
        return asdict(self)


def rank_needed(n: int, coverage: float) -> int:
    """k = ceil((n + 1) * coverage), the finite-sample rank of the threshold among n scores."""
    return int(math.ceil((n + 1) * coverage - 1e-9))


def examples_needed(coverage: float) -> int:
    """The fewest calibration examples for which `coverage` can be guaranteed (k <= n)."""
    n = max(1, int(coverage / (1 - coverage)) - 1)
    while rank_needed(n, coverage) > n:
        n += 1
    return n


def check_coverage(coverage: float, what: str = "--coverage") -> float:
    if not (isinstance(coverage, (int, float)) and 0.0 < coverage < 1.0):
        raise UsageError(f"{what} must be a probability between 0 and 1 (exclusive), not {coverage}")
    return float(coverage)


def check_enough(n: int, coverage: float, what: str = "coverage") -> None:
    need = examples_needed(coverage)
    if n < need:
        raise UsageError(f"too few calibration examples for {what} {coverage:g}: need >= {need}, have {n}")


def tiebreak(vectors: np.ndarray) -> np.ndarray:
    """(N,) numbers in [0, 1), a hash of each vector's bytes: the same image, the same number."""
    rows = np.ascontiguousarray(vectors, np.float32)
    return np.array([int.from_bytes(hashlib.blake2b(r.tobytes(), digest_size=8).digest(), "little") / 2.0 ** 64
                     for r in rows], np.float64).reshape(len(rows))


def _ranked(probs: np.ndarray, u: np.ndarray, lam: float, k_reg: int):
    """(order, scores): scores[i, j] is the score of the label ranked j-th (0-based) for image i."""
    p = np.asarray(probs, np.float64)
    order = np.argsort(-p, axis=1, kind="stable")
    sp = np.take_along_axis(p, order, axis=1)
    above = np.cumsum(sp, axis=1) - sp
    ranks = np.arange(1, p.shape[1] + 1)
    return order, above + u[:, None] * sp + lam * np.maximum(0, ranks - k_reg)[None, :]


def scores(probs: np.ndarray, y: np.ndarray, u: np.ndarray, lam: float = 0.0, k_reg: int = 0) -> np.ndarray:
    """The score of each image's true label y."""
    order, s = _ranked(probs, u, lam, k_reg)
    pos = np.argmax(order == np.asarray(y)[:, None], axis=1)
    return s[np.arange(len(s)), pos]


def quantile(cal_scores: np.ndarray, coverage: float) -> float:
    n = len(cal_scores)
    check_enough(n, coverage)
    return float(np.sort(cal_scores)[rank_needed(n, coverage) - 1])


def prediction_sets(probs: np.ndarray, u: np.ndarray, conf: Conformal) -> list[np.ndarray]:
    """Each image's set: class indices, best first; never empty."""
    order, s = _ranked(probs, u, conf.lam, conf.k_reg)
    sizes = np.maximum(1, (s <= conf.threshold).sum(axis=1))   # scores rise along the ranking
    return [order[i, :k] for i, k in enumerate(sizes)]


def calibrate(probs: np.ndarray, y: np.ndarray, u: np.ndarray, coverage: float, lam: float = 0.0,
              k_reg: int = 0) -> Conformal:
    """The threshold from held-out (calibration) examples' probabilities and true labels."""
    q = quantile(scores(probs, y, u, lam, k_reg), coverage)
    return Conformal(float(coverage), q, float(lam), int(k_reg), int(len(y)))


def choose_penalty(probs: np.ndarray, y: np.ndarray, u: np.ndarray, coverage: float) -> tuple[float, int]:
    """RAPS's (lam, k_reg) from out-of-fold predictions: k_reg the coverage-quantile of the true label's
    rank, lam the penalty giving the smallest mean set size there (APS, lam = 0, on ties or with too few
    examples to compare)."""
    n = len(y)
    if n < examples_needed(coverage):
        return 0.0, 0
    order = np.argsort(-np.asarray(probs), axis=1, kind="stable")
    ranks = np.argmax(order == np.asarray(y)[:, None], axis=1) + 1
    k_reg = int(np.sort(ranks)[rank_needed(n, coverage) - 1])
    best, best_size = (0.0, k_reg), math.inf
    for lam in PENALTIES:
        conf = calibrate(probs, y, u, coverage, lam, k_reg)
        size = float(np.mean([len(s) for s in prediction_sets(probs, u, conf)]))
        if size < best_size - 1e-12:
            best, best_size = (lam, k_reg), size
    return best


def set_metrics(sets: list[np.ndarray], y: np.ndarray) -> dict:
    """Empirical coverage and mean set size of prediction sets against true labels."""
    y = np.asarray(y)
    hit = [int(t) in set(s.tolist()) for s, t in zip(sets, y)]
    return {"coverage": float(np.mean(hit)) if len(y) else None,
            "mean_set_size": float(np.mean([len(s) for s in sets])) if len(sets) else None,
            "singletons": float(np.mean([len(s) == 1 for s in sets])) if len(sets) else None}
