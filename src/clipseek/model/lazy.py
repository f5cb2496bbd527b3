"""An Encoder whose model is loaded on first use: for a gallery whose database already names its model,
a re-index that finds nothing new or changed loads no model at all (no torch import, no weights, no
ONNX session): the scan, the plan and the commit need only the model's fingerprint and dim, which the
database recorded.

`LazyEncoder(fingerprint, dim, load)` answers `fingerprint` and `dim` from what it was given; any other
attribute (preprocessing, encoding, ...) loads the real encoder once with `load()` (thread-safe: the
decode workers may ask at the same time) and is then the real one's. The loaded model must have the
weights the fingerprint names (`Fingerprint.same_weights`), else ModelMismatchError: the same check a
gallery makes when it is given a model.
"""

from __future__ import annotations

import threading
from typing import Callable

from clipseek.errors import ModelMismatchError
from clipseek.model.base import Encoder
from clipseek.model.fingerprint import Fingerprint


class LazyEncoder:
    """An Encoder that loads its model on first use (see the module doc)."""

    def __init__(self, fingerprint: Fingerprint, dim: int, load: Callable[[], Encoder]):
        self.fingerprint = fingerprint
        self.dim = int(dim)
        self._load = load
        self._encoder: Encoder | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._encoder is not None

    def get(self) -> Encoder:
        """The real encoder, loaded now if it was not yet."""
        if self._encoder is None:
            with self._lock:
                if self._encoder is None:
                    enc = self._load()
                    if not enc.fingerprint.same_weights(self.fingerprint):
                        raise ModelMismatchError(f"the model loaded for [{self.fingerprint}] is "
                                                 f"[{enc.fingerprint}]: its weights changed since")
                    self._encoder = enc
        return self._encoder

    def __getattr__(self, name: str):  # only for attributes not set in __init__
        if name.startswith("__") or name in ("_load", "_encoder", "_lock"):
            raise AttributeError(name)
        return getattr(self.get(), name)
