"""Flag what is unlike the examples: a k-nearest-neighbour cosine distance and a conformal threshold.

score(x) = 1 - mean cosine of x to its k nearest example vectors (k = min(3, examples - 1)).
An image is "unusual" when its score is above the threshold. The threshold is conformal: each example
is scored against the other examples (leave one out), and the threshold is the r-th smallest of those
n scores with r = ceil((n + 1) * (1 - false_alarm)). Why this holds the false-alarm rate for a new
normal image x exchangeable with the examples: score x and every example against the other n of the
n + 1; by exchangeability x's score is above the r-th smallest of the examples' with probability <=
false_alarm. A leave-one-out score only has n - 1 others to be near, so it is at least that example's
score among n + 1, and the threshold used is at least the one of that argument: the rate can only be
lower. It needs n >= (1 - false_alarm) / false_alarm examples (19 for 5%).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from clipseek.errors import UsageError
from clipseek.fewshot.conformal import examples_needed, rank_needed

NEIGHBOURS = 3
BLOCK = 1024


@dataclass(frozen=True)
class Anomaly:
    false_alarm: float       # the target rate of normal images flagged
    threshold: float         # flag when score > threshold
    neighbours: int
    n_reference: int

    def to_dict(self) -> dict:
        return asdict(self)


def check_false_alarm(rate: float) -> float:
    if not (isinstance(rate, (int, float)) and 0.0 < rate < 1.0):
        raise UsageError(f"--false-alarm must be a rate between 0 and 1 (exclusive), not {rate}")
    return float(rate)


def knn_scores(x: np.ndarray, refs: np.ndarray, k: int, leave_one_out: bool = False) -> np.ndarray:
    """(N,) 1 - mean cosine to the k nearest of `refs`; with `leave_one_out`, x is `refs` and each row
    is scored against the others."""
    x = np.asarray(x, np.float32)
    refs = np.asarray(refs, np.float32)
    out = np.zeros(len(x), np.float64)
    for start in range(0, len(x), BLOCK):
        sims = (x[start:start + BLOCK] @ refs.T).astype(np.float64)
        if leave_one_out:
            rows = np.arange(len(sims))
            sims[rows, start + rows] = -np.inf
        top = -np.partition(-sims, k - 1, axis=1)[:, :k] if k < sims.shape[1] else sims
        out[start:start + BLOCK] = 1.0 - top.mean(axis=1)
    return out


def neighbours_for(n_reference: int) -> int:
    return max(1, min(NEIGHBOURS, n_reference - 1))


def calibrate_anomaly(refs: np.ndarray, false_alarm: float) -> Anomaly:
    """The threshold from the examples themselves (leave one out); UsageError with too few."""
    n = len(refs)
    need = examples_needed(1.0 - false_alarm)
    if n < max(need, 2):
        raise UsageError(f"too few calibration examples for false-alarm rate {false_alarm:g}: "
                         f"need >= {max(need, 2)}, have {n}")
    k = neighbours_for(n)
    loo = knn_scores(refs, refs, k, leave_one_out=True)
    t = float(np.sort(loo)[rank_needed(n, 1.0 - false_alarm) - 1])
    return Anomaly(float(false_alarm), t, k, n)


def flag(scores: np.ndarray, anomaly: Anomaly) -> np.ndarray:
    return np.asarray(scores) > anomaly.threshold


def detection_metrics(unusual: np.ndarray, is_normal: np.ndarray) -> dict:
    """False-alarm rate (normal images flagged) and detection rate (other images flagged)."""
    unusual, is_normal = np.asarray(unusual, bool), np.asarray(is_normal, bool)
    return {"false_alarm": float(unusual[is_normal].mean()) if is_normal.any() else None,
            "detection_rate": float(unusual[~is_normal].mean()) if (~is_normal).any() else None,
            "n_normal": int(is_normal.sum()), "n_other": int((~is_normal).sum())}

