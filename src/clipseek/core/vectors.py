"""Vectors that are not finite are refused wherever they enter (an encoder, a shard, a database row).

One NaN in a stored vector makes every score with it NaN: classify prints `nan`, search finds nothing,
and nothing says why. So every vector that comes from outside plain numpy arithmetic goes through here.
"""

from __future__ import annotations

import numpy as np

from clipseek.errors import ClipseekError

NOT_FINITE = "its vector is not finite (NaN or infinite): the model or its weights are broken"


def finite_rows(arr: np.ndarray) -> np.ndarray:
    """(N, D) -> (N,) bool: True where every value of the row is finite. A 1-D array is one row per value."""
    a = np.asarray(arr)
    if a.ndim <= 1:
        return np.isfinite(a)
    return np.isfinite(a).all(axis=tuple(range(1, a.ndim)))


def check_finite(arr: np.ndarray, what: str, error: type[Exception] = ClipseekError) -> np.ndarray:
    """Return `arr` unchanged when all its values are finite; else raise `error` with one line naming `what`."""
    a = np.asarray(arr)
    if a.size and not np.isfinite(a).all():
        bad = int((~finite_rows(a)).sum()) if a.ndim > 1 else int((~np.isfinite(a)).sum())
        total = a.shape[0] if a.ndim else 1
        raise error(f"{what}: {bad} of {total} vectors are not finite (NaN or infinite)")
    return arr
