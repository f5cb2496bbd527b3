"""The Encoder protocol: what every backend gives the rest of clipseek."""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np
from PIL import Image

from clipseek.core.preprocess import PreprocessCfg


class Encoder(Protocol):
    dim: int
    logit_scale: float
    fingerprint: str
    preprocess_cfg: PreprocessCfg

    def preprocess(self, image: Image.Image) -> np.ndarray: ...
    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray: ...
    def encode_images(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray: ...
    def encode_texts(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray: ...
