"""The Encoder protocol: what every backend gives the rest of clipseek, and all that the rest reads."""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import numpy as np
from PIL import Image

from clipseek.core.preprocess import PreprocessCfg
from clipseek.core.vectors import check_finite
from clipseek.model.fingerprint import Fingerprint


@runtime_checkable
class Encoder(Protocol):
    """Images and texts in, unit float32 vectors out, in one shared space of `dim` dimensions."""

    name: str                     # the checkpoint as given to load_model (hub id or absolute path)
    device: str                   # where it runs: "cpu", "cuda", "mps"
    dtype_name: str               # the precision it runs at: "float32", "float16", "bfloat16", "int8"
    dim: int                      # vector length
    logit_scale: float            # multiplies cosine similarities into classification logits
    logit_bias: float | None      # SigLIP-style: sigmoid(scale * cos + bias) per label; None: softmax (CLIP)
    fingerprint: Fingerprint      # what made its vectors (stored with them, checked against them)
    preprocess_cfg: PreprocessCfg

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """One image -> its (3, H, W) float32 model input."""
        ...

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """(N, 3, H, W) preprocessed images -> (N, dim) unit vectors."""
        ...

    def encode_images(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        """Images -> (N, dim) unit vectors."""
        ...

    def encode_texts(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """Texts -> (M, dim) unit vectors."""
        ...


class ImagesFromPixels:
    """A backend's `encode_images`: batches of its own `preprocess` fed to its own `encode_pixels`."""

    def encode_images(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        enc: Encoder = self  # type: ignore[assignment]  # a mixin: the class it joins is the Encoder
        out = [enc.encode_pixels(np.stack([enc.preprocess(im) for im in images[i:i + batch_size]]))
               for i in range(0, len(images), batch_size)]
        return finite_output(enc, out, "image")


def finite_output(encoder: Encoder, batches: list[np.ndarray], kind: str) -> np.ndarray:
    """A backend's `encode_texts`/`encode_images` result: its batches as one (N, dim) array, refused
    (ClipseekError, one line) when a vector is not finite, so no NaN is ever scored, printed or stored."""
    out = np.concatenate(batches) if batches else np.zeros((0, encoder.dim), np.float32)
    return check_finite(out, f"the {kind} vectors of model {encoder.name}",
                        hint="its weights are broken (a training run that diverged?)")
