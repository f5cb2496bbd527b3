"""Classifier weights for the server, built in slices on the shared model thread.

The server runs all model work on one thread (`GalleryService`). A classify request with many prompts
(up to `Limits.max_prompts`, 20,000) would hold that thread for seconds, and every search queued
behind it would wait that long. So its prompts are encoded in slices, each one a separate task on the
model thread, submitted only when the previous one is done: a search that arrives meanwhile is queued
before the next slice and runs between the two. The slice size adapts so that one slice takes about
`SLICE_SECONDS` whatever the model and the machine.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Callable, Sequence

import numpy as np

from clipseek.core.prompts import mean_unit, render

SLICE_SECONDS = 0.05       # model-thread time one slice of a large request may take
MIN_SLICE, MAX_SLICE = 8, 4096
CACHED = 8                 # label sets whose weights are kept (most recently used)


class Classifiers:
    """(labels, templates) -> (L, D) unit weights, cached; `run(fn, *args)` runs on the model thread."""

    def __init__(self, run: Callable, encode_texts: Callable[[list[str]], np.ndarray]):
        self._run, self._encode = run, encode_texts
        self._cache: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.slice = 64  # prompts per model-thread task; adapted after every slice

    def get(self, labels: Sequence[str], templates: Sequence[str]) -> np.ndarray:
        key = (tuple(labels), tuple(templates))
        with self._lock:
            weights = self._cache.pop(key, None)
        if weights is None:
            weights = self._build(list(labels), list(templates))
        with self._lock:
            self._cache[key] = weights
            while len(self._cache) > CACHED:
                self._cache.popitem(last=False)
        return weights

    def _build(self, labels: list[str], templates: list[str]) -> np.ndarray:
        prompts = [render(t, label) for label in labels for t in templates]
        parts, i = [], 0
        while i < len(prompts):
            part = prompts[i:i + self.slice]
            t0 = time.perf_counter()
            parts.append(self._run(self._encode, part))  # other requests' tasks may run before the next
            self._adapt(len(part), time.perf_counter() - t0)
            i += len(part)
        vecs = np.concatenate(parts)
        return mean_unit(vecs.reshape(len(labels), len(templates), -1))

    def _adapt(self, n: int, seconds: float) -> None:
        if n < self.slice:  # the last, short slice says little
            return
        rate = n / max(seconds, 1e-4)
        self.slice = int(min(MAX_SLICE, max(MIN_SLICE, rate * SLICE_SECONDS)))
