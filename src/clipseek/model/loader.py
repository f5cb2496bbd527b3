"""Load a checkpoint (hub id or directory) into an Encoder that turns images and texts into unit vectors.

Everything downstream sees only the Encoder protocol (`model/base.py`); its `fingerprint` says which
weights made a vector (`model/fingerprint.py`). A new backend is one new class.

Two checkpoint formats: `transformers` (config.json; hub ids, directories) and open_clip's
(`hf-hub:ORG/NAME`, or a directory with open_clip_config.json and no config.json; `model/open_clip.py`),
mapped onto the same transformers CLIP model. A plain hub id that is not a transformers checkpoint but
holds an open_clip one is loaded as open_clip.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from clipseek.core.preprocess import PreprocessCfg, check_framing
from clipseek.errors import ModelLoadError, ModelNotFound, UsageError
from clipseek.model import open_clip
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
            raise ModelNotFound(f"{p} is a directory but has no config.json (transformers) or "
                                f"{open_clip.CONFIG_NAME} (open_clip): not a checkpoint directory")
        return str(p), True
    if p.suffix or name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:
        raise ModelNotFound(f"model directory not found: {name_or_path}")
    return name_or_path, False


def open_clip_source(name_or_path: str) -> tuple[str, bool] | None:
    """(hub repo or directory, is local) when `name_or_path` names an open_clip checkpoint:
    `hf-hub:ORG/NAME`, or a directory with open_clip_config.json and no transformers config.json."""
    if name_or_path.startswith(open_clip.HUB_PREFIX):
        repo = name_or_path[len(open_clip.HUB_PREFIX):]
        if repo.count("/") != 1 or not all(repo.split("/")):
            raise UsageError(f"{name_or_path!r}: expected hf-hub:ORG/NAME")
        return repo, False
    p = Path(name_or_path).expanduser()
    if open_clip.is_open_clip_dir(p) and not (p / "config.json").is_file():
        return str(p), True
    return None


def _open_clip_files(name_or_path: str, source: str, local: bool, revision: str | None) -> open_clip.Files:
    if local:
        return open_clip.local_files(source, lambda: _local_identity(source, open_clip.CONFIG_NAME))
    return open_clip.hub_files(source, revision, name_or_path)


def _local_identity(path: str, config_name: str = "config.json") -> str:
    """Cheap content identity of a local checkpoint: config + size and edges of the weights."""
    h = hashlib.sha256()
    root = Path(path)
    h.update((root / config_name).read_bytes())
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
    """Load a checkpoint as an Encoder: any `transformers` model with get_image_features/
    get_text_features, or an open_clip-format CLIP ViT (`hf-hub:ORG/NAME`, or a directory).

    `name_or_path`: a hub id, `hf-hub:ORG/NAME`, a local checkpoint directory, or a bundled name
    ("clipseek-demo").
    """
    import torch

    check_framing(framing)  # a bad argument fails before any weights are read
    quiet_transformers()
    dev = resolve_device(device)
    int8 = dtype == "int8"
    if int8 and dev != "cpu":
        raise UsageError("--dtype int8 (dynamic quantization) runs on the CPU only; use --device cpu")
    torch_dtype = torch.float32 if int8 else resolve_dtype(dtype, dev)
    bias = None
    oc = open_clip_source(name_or_path)
    if oc is None:
        try:
            model, tokenizer, cfg, identity = _load_transformers(name_or_path, revision, torch_dtype, framing)
        except ModelNotFound:
            raise
        except ModelLoadError:
            oc = _hub_open_clip_fallback(name_or_path)
            if oc is None:
                raise
    if oc is not None:
        files = _open_clip_files(name_or_path, *oc, revision)
        model, tokenizer, cfg, bias = open_clip.load(files, name_or_path, torch_dtype, framing)
        identity = files.identity()
    if int8:
        model = quantize_int8(model)
    return HFEncoder(model, tokenizer, cfg, dev, name=name_or_path, identity=identity, logit_bias=bias)


def _hub_open_clip_fallback(name_or_path: str) -> tuple[str, bool] | None:
    """A plain hub id that holds an open_clip checkpoint (and no transformers one)."""
    if Path(name_or_path).expanduser().exists() or name_or_path in BUNDLED_MODELS \
            or name_or_path.count("/") != 1:
        return None
    files = open_clip.hub_files(name_or_path, None, name_or_path)
    return (name_or_path, False) if files.fetch(open_clip.CONFIG_NAME) is not None else None


def _load_transformers(name_or_path: str, revision: str | None, torch_dtype, framing: str):
    """(model, tokenizer, preprocess cfg, identity) of a `transformers` checkpoint."""
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    source, local = resolve_checkpoint(name_or_path)
    try:
        model = AutoModel.from_pretrained(source, revision=revision, dtype=torch_dtype)
        tokenizer = AutoTokenizer.from_pretrained(source, revision=revision)
        image_processor = AutoImageProcessor.from_pretrained(source, revision=revision)
    except (OSError, ValueError) as e:
        if local:
            raise ModelLoadError(f"cannot load checkpoint {source}: {str(e).splitlines()[0]}") from None
        raise ModelLoadError(
            f"cannot load {name_or_path!r} from the Hugging Face hub (offline, or not cached, or neither a "
            f"transformers checkpoint (config.json) nor an open_clip one ({open_clip.CONFIG_NAME})). "
            "Pass a local checkpoint directory with --model PATH (or the bundled 'clipseek-demo'), "
            "or download it once with network access; set HF_HUB_OFFLINE=1 to use the cache only."
        ) from None
    if not (hasattr(model, "get_image_features") and hasattr(model, "get_text_features")):
        raise ModelLoadError(f"{name_or_path}: {type(model).__name__} has no get_image_features/"
                             "get_text_features; not a CLIP-like model")
    identity = _local_identity(source) if local else (
        getattr(model.config, "_commit_hash", None) or revision or "main")
    return model, tokenizer, PreprocessCfg.from_processor(image_processor, framing), identity


def load_preprocess_cfg(name_or_path: str, framing: str = "center",
                        revision: str | None = None) -> PreprocessCfg:
    """The checkpoint's preprocessing without its weights (a driver that only plans the work)."""
    from transformers import AutoImageProcessor

    oc = open_clip_source(name_or_path)
    if oc is not None:
        files = _open_clip_files(name_or_path, *oc, revision)
        config = open_clip.read_config(files, name_or_path)
        arch = open_clip.parse_config(config, name_or_path)
        return open_clip.preprocess_cfg(config, arch.image_size, name_or_path, framing)
    source, local = resolve_checkpoint(name_or_path)
    try:
        proc = AutoImageProcessor.from_pretrained(source, revision=revision)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"cannot load the image processor of {name_or_path}: {str(e).splitlines()[0]}") from None
    return PreprocessCfg.from_processor(proc, framing)


