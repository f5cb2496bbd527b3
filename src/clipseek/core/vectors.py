"""Vectors that are not finite are refused wherever they enter (an encoder, a shard, a database row).

One NaN in a stored vector makes every score with it NaN: classify prints `nan`, search finds nothing,
and nothing says why. So every vector that comes from outside plain numpy arithmetic goes through here:
`check_finite` refuses a whole array (a text batch, a shard, a row), `finite_rows` tells which rows of a
batch may be kept (the others become `Skipped` files with the reason NOT_FINITE).
"""

from __future__ import annotations

import numpy as np

from clipseek.errors import ClipseekError

NOT_FINITE = "the model gave a vector that is not finite (NaN or infinite): its weights are broken"


def finite_rows(arr: np.ndarray) -> np.ndarray:
    """(N, D) -> (N,) bool: True where every value of the row is finite. A 1-D array is one row per value."""
    a = np.asarray(arr)
    if a.ndim <= 1:
        return np.isfinite(a)
    return np.isfinite(a).all(axis=tuple(range(1, a.ndim)))


def check_finite(arr: np.ndarray, what: str, error: type[Exception] = ClipseekError, hint: str = "") -> np.ndarray:
    """`arr` unchanged when all its values are finite; else `error` with one line naming `what`:
    "WHAT: 2 of 3 vectors are not finite (NaN or infinite)[; HINT]"."""
    a = np.asarray(arr)
    if a.size and not np.isfinite(a).all():
        bad = int((~finite_rows(a)).sum())
        total = a.shape[0] if a.ndim else 1
        raise error(f"{what}: {bad} of {total} vector{'s' * (total != 1)} {'is' if bad == 1 else 'are'} "
                    "not finite (NaN or infinite)" + (f"; {hint}" if hint else ""))
    return arr


def unit_rows(v: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, as float32 (a zero row stays zero; a non-finite one stays non-finite,
    for the checks above to find)."""
    v = np.asarray(v, np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        return (v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)).astype(np.float32)
