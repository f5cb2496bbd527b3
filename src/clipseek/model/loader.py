"""Load a checkpoint (hub id or directory) into an Encoder that turns images and texts into unit vectors.

Everything downstream sees only the Encoder protocol (`model/base.py`); its `fingerprint` says which
weights made a vector (`model/fingerprint.py`). A new backend is one new class.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from clipseek.core.preprocess import PreprocessCfg, check_framing
from clipseek.errors import ModelLoadError, ModelNotFound, UsageError
from clipseek.model.hf import HFEncoder, quiet_transformers
from clipseek.model.quantize import quantize_int8

DEFAULT_MODEL = os.environ.get("CLIPSEEK_MODEL", "openai/clip-vit-base-patch32")
BUNDLED_MODELS = {"clipseek-demo": Path(__file__).parent / "bundled" / "clipseek-demo"}
DTYPES = {"fp32": "float32", "float32": "float32", "fp16": "float16", "float16": "float16",
          "half": "float16", "bf16": "bfloat16", "bfloat16": "bfloat16"}


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
        raise UsageError(f"unknown dtype {dtype!r}; choose one of auto, fp32, fp16, bf16, int8")
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
            raise ModelNotFound(f"{p} is a directory but has no config.json: not a checkpoint directory")
        return str(p), True
    if p.suffix or name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:
        raise ModelNotFound(f"model directory not found: {name_or_path}")
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
               framing: str = "center", revision: str | None = None) -> HFEncoder:
    """Load any `transformers` checkpoint with get_image_features/get_text_features as an Encoder.

    `name_or_path`: a hub id, a local checkpoint directory, or a bundled name ("clipseek-demo").
    """
    import torch
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    check_framing(framing)  # a bad argument fails before any weights are read
    quiet_transformers()
    source, local = resolve_checkpoint(name_or_path)
    dev = resolve_device(device)
    int8 = dtype == "int8"
    if int8 and dev != "cpu":
        raise UsageError("--dtype int8 (dynamic quantization) runs on the CPU only; use --device cpu")
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


