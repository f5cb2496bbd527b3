"""Sets of row ids as sorted int64 arrays: what a filter passes, checked by bisection."""

from __future__ import annotations

import numpy as np


def sorted_unique(ids) -> np.ndarray:
    """`ids` as a sorted int64 array without repeats. Filter ids usually arrive sorted (Facets), so
    the order is checked (~0.1 ms per 100k ids) before anything is sorted."""
    a = np.asarray(ids, dtype=np.int64).ravel()
    if len(a) > 1 and not bool((a[1:] > a[:-1]).all()):
        a = np.sort(a)
        a = a[np.concatenate(([True], a[1:] != a[:-1]))]
    return a


def member(ids: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """ids (any shape) that are in `allowed` (sorted, non-empty)."""
    at = np.minimum(np.searchsorted(allowed, ids), len(allowed) - 1)
    return allowed[at] == ids
