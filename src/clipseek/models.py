"""Load a checkpoint (hub id or directory) into an Encoder that turns images and texts into unit vectors.

Everything downstream sees only the Encoder protocol: `encode_images`, `encode_texts`, `logit_scale`,
`fingerprint`, `dim`. A new backend is one new class.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
from PIL import Image

from .errors import ModelLoadError
from .preprocess import PreprocessCfg, preprocess

DEFAULT_MODEL = os.environ.get("CLIPSEEK_MODEL", "openai/clip-vit-base-patch32")
BUNDLED_MODELS = {"clipseek-demo": Path(__file__).parent / "models" / "clipseek-demo"}
DTYPES = {"fp32": "float32", "float32": "float32", "fp16": "float16", "float16": "float16",
          "half": "float16", "bf16": "bfloat16", "bfloat16": "bfloat16"}


class Encoder(Protocol):
    dim: int
    logit_scale: float
    fingerprint: str
    preprocess_cfg: PreprocessCfg

    def preprocess(self, image: Image.Image) -> np.ndarray: ...
    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray: ...
    def encode_images(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray: ...
    def encode_texts(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray: ...


def quiet_transformers() -> None:
    """Keep transformers' info logs and weight-loading bars off the user's terminal."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def resolve_device(device: str = "auto") -> str:
    import torch

    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve_dtype(dtype: str, device: str):
    import torch

    if dtype == "auto":
        return torch.float16 if device.startswith("cuda") else torch.float32
    if dtype not in DTYPES:
        raise ModelLoadError(f"unknown dtype {dtype!r}; choose one of auto, fp32, fp16, bf16, int8")
    return getattr(torch, DTYPES[dtype])


def resolve_checkpoint(name_or_path: str) -> tuple[str, bool]:
    """Map a name to (what from_pretrained gets, whether it is a local directory)."""
    if name_or_path in BUNDLED_MODELS:
        path = BUNDLED_MODELS[name_or_path]
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"bundled model {name_or_path!r} is missing from {path}")
        return str(path), True
    p = Path(name_or_path).expanduser()
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise ModelLoadError(f"{p} is a directory but has no config.json: not a checkpoint directory")
        return str(p), True
    if p.suffix or name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:
        raise ModelLoadError(f"model directory not found: {name_or_path}")
    return name_or_path, False


def _local_identity(path: str) -> str:
    """Cheap content identity of a local checkpoint: config + size and edges of the weights."""
    h = hashlib.sha256()
    root = Path(path)
    h.update((root / "config.json").read_bytes())
    for w in sorted(root.glob("*.safetensors")) + sorted(root.glob("*.bin")):
        size = w.stat().st_size
        h.update(f"{w.name}:{size}".encode())
        with open(w, "rb") as f:
            h.update(f.read(1 << 20))
            if size > 2 << 20:
                f.seek(-(1 << 20), os.SEEK_END)
                h.update(f.read())
    return h.hexdigest()[:16]


def load_model(name_or_path: str = DEFAULT_MODEL, device: str = "auto", dtype: str = "auto",
               framing: str = "center", revision: str | None = None) -> "HFEncoder":
    """Load any `transformers` checkpoint with get_image_features/get_text_features as an Encoder.

    `name_or_path`: a hub id, a local checkpoint directory, or a bundled name ("clipseek-demo").
    """
    import torch
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    quiet_transformers()
    source, local = resolve_checkpoint(name_or_path)
    dev = resolve_device(device)
    int8 = dtype == "int8"
    if int8 and dev != "cpu":
        raise ModelLoadError("--dtype int8 (dynamic quantization) runs on the CPU only; use --device cpu")
    torch_dtype = torch.float32 if int8 else resolve_dtype(dtype, dev)
    try:
        model = AutoModel.from_pretrained(source, revision=revision, dtype=torch_dtype)
        tokenizer = AutoTokenizer.from_pretrained(source, revision=revision)
        image_processor = AutoImageProcessor.from_pretrained(source, revision=revision)
    except (OSError, ValueError) as e:
        if local:
            raise ModelLoadError(f"cannot load checkpoint {source}: {str(e).splitlines()[0]}") from None
        raise ModelLoadError(
            f"cannot load {name_or_path!r} from the Hugging Face hub (offline, or not cached). "
            "Pass a local checkpoint directory with --model PATH (or the bundled 'clipseek-demo'), "
            "or download it once with network access; set HF_HUB_OFFLINE=1 to use the cache only."
        ) from None
    if not (hasattr(model, "get_image_features") and hasattr(model, "get_text_features")):
        raise ModelLoadError(f"{name_or_path}: {type(model).__name__} has no get_image_features/"
                             "get_text_features; not a CLIP-like model")
    identity = _local_identity(source) if local else (
        getattr(model.config, "_commit_hash", None) or revision or "main")
    if int8:
        model = quantize_int8(model)
    cfg = PreprocessCfg.from_processor(image_processor, framing)
    return HFEncoder(model, tokenizer, cfg, dev, name=name_or_path, identity=identity)


def load_preprocess_cfg(name_or_path: str, framing: str = "center",
                        revision: str | None = None) -> PreprocessCfg:
    """The checkpoint's preprocessing without its weights (a driver that only plans the work)."""
    from transformers import AutoImageProcessor

    source, local = resolve_checkpoint(name_or_path)
    try:
        proc = AutoImageProcessor.from_pretrained(source, revision=revision)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"cannot load the image processor of {name_or_path}: {str(e).splitlines()[0]}") from None
    return PreprocessCfg.from_processor(proc, framing)


def quantize_int8(model, towers: tuple[str, ...] = ("vision",)):
    """Dynamic int8 quantization of a tower's Linear layers (weights int8, activations quantized on
    the fly). `--dtype int8` quantizes the image tower: the fastest CPU option for indexing, ~2x fp32 on
    AVX2. The text tower stays fp32 there, so text queries keep full precision; quantizing it too
    (towers=("vision", "text")) makes a ViT-B/32 text query ~3x faster on CPU (41 -> 15 ms on the
    2-core CI machine) at a cosine of ~0.998 to the fp32 vector (benchmarks/search_bench.py)."""
    import warnings

    import torch
    from torch.ao.quantization import quantize_dynamic

    names = {"vision": ("vision_model", "visual_projection"), "text": ("text_model", "text_projection")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for tower in towers:
            for name in names[tower]:
                part = getattr(model, name, None)  # (a bare projection Linear stays fp32)
                if part is not None:
                    setattr(model, name, quantize_dynamic(part.eval(), {torch.nn.Linear}, dtype=torch.qint8))
    model._clipseek_dtype = "int8"
    return model


def _features(out) -> "torch.Tensor":  # noqa: F821
    """transformers <5 returns a tensor; >=5 returns an output whose pooler_output is projected."""
    return out if hasattr(out, "shape") else out.pooler_output


class HFEncoder:
    """A `transformers` model (CLIP, SigLIP, ...) behind the Encoder protocol."""

    backend = "torch"

    def __init__(self, model, tokenizer, preprocess_cfg: PreprocessCfg, device: str,
                 name: str, identity: str):
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
        dtype_name = getattr(model, "_clipseek_dtype", None) or str(self.dtype).replace("torch.", "")
        self.dtype_name = dtype_name
        self.fingerprint = (f"{name}@{identity} backend={self.backend} dtype={dtype_name} "
                            f"pre={preprocess_cfg.describe()}")
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

    def encode_images(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        out = [self.encode_pixels(np.stack([self.preprocess(im) for im in images[i:i + batch_size]]))
               for i in range(0, len(images), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

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
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def describe(self) -> dict:
        return {"model": self.name, "device": self.device, "dtype": str(self.dtype),
                "dim": self.dim, "fingerprint": self.fingerprint}


def _unit(t) -> np.ndarray:
    v = t.detach().float().cpu().numpy()
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return (v / np.maximum(norms, 1e-12)).astype(np.float32)
