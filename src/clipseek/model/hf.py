"""The `transformers` backend: any model with get_image_features/get_text_features as an Encoder."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from PIL import Image

from clipseek.core.preprocess import PreprocessCfg, preprocess
from clipseek.core.vectors import unit_rows
from clipseek.errors import ModelLoadError
from clipseek.model.base import ImagesFromPixels, finite_output
from clipseek.model.fingerprint import Fingerprint


def quiet_transformers() -> None:
    """Keep transformers' info logs and weight-loading bars off the user's terminal."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _features(out) -> "torch.Tensor":  # noqa: F821
    """transformers <5 returns a tensor; >=5 returns an output whose pooler_output is projected."""
    return out if hasattr(out, "shape") else out.pooler_output


class HFEncoder(ImagesFromPixels):
    """A `transformers` model (CLIP, SigLIP, ...) behind the Encoder protocol."""

    backend = "torch"

    def __init__(self, model, tokenizer, preprocess_cfg: PreprocessCfg, device: str,
                 name: str, identity: str, logit_bias: float | None = None):
        import torch

        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.preprocess_cfg = preprocess_cfg
        self.device = device
        self.name = name
        self.dtype = next(model.parameters()).dtype
        self.dim = int(model.config.projection_dim if hasattr(model.config, "projection_dim")
                       else model.config.text_config.hidden_size)
        scale = getattr(model, "logit_scale", None)
        self.logit_scale = float(scale.detach().float().exp()) if scale is not None else 100.0
        bias = getattr(model, "logit_bias", None)  # SigLIP, SigLIP 2: scored with a sigmoid per label
        self.logit_bias = float(bias.detach().float().reshape(-1)[0]) if bias is not None else logit_bias
        for what, value in (("logit_scale", self.logit_scale), ("logit_bias", self.logit_bias)):
            if value is not None and not math.isfinite(value):
                raise ModelLoadError(f"{name}: its {what} is {value}, not a finite number: the checkpoint is "
                                     "broken (a training run that diverged?)")
        dtype_name = getattr(model, "_clipseek_dtype", None) or str(self.dtype).replace("torch.", "")
        self.dtype_name = dtype_name
        self.fingerprint = Fingerprint(name, identity, self.backend, dtype_name, preprocess_cfg.describe())
        self.model_type = getattr(model.config, "model_type", "clip")
        text_cfg = getattr(model.config, "text_config", None)
        self.max_text_len = int(getattr(text_cfg, "max_position_embeddings", 77) or 77)
        self._torch = torch

    def preprocess(self, image: Image.Image) -> np.ndarray:
        return preprocess(image, self.preprocess_cfg)

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """(N, 3, H, W) float32 pixel batch -> (N, D) unit float32 vectors."""
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(pixels)).to(self.device, self.dtype)
            feats = _features(self.model.get_image_features(pixel_values=x))
        return _unit(feats)

    def encode_texts(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """Texts -> (M, D) unit vectors; each batch is padded to its longest text, not to 77 tokens."""
        torch = self._torch
        siglip = self.model_type.startswith("siglip")
        out = []
        for i in range(0, len(texts), batch_size):
            batch = list(texts[i:i + batch_size])
            tok = self.tokenizer(batch, padding="max_length" if siglip else True, truncation=True,
                                 max_length=64 if siglip else self.max_text_len, return_tensors="pt")
            with torch.inference_mode():
                kwargs = {"input_ids": tok["input_ids"].to(self.device)}
                if "attention_mask" in tok and not siglip:
                    kwargs["attention_mask"] = tok["attention_mask"].to(self.device)
                out.append(_unit(_features(self.model.get_text_features(**kwargs))))
        return finite_output(self, out, "text")

    def describe(self) -> dict:
        return {"model": self.name, "device": self.device, "dtype": str(self.dtype),
                "dim": self.dim, "fingerprint": str(self.fingerprint)}


def _unit(t) -> np.ndarray:
    return unit_rows(t.detach().float().cpu().numpy())
