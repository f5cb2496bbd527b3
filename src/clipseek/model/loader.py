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
import logging
import os
import pickle
import sys
from pathlib import Path

from clipseek.core.preprocess import PreprocessCfg, check_framing
from clipseek.errors import ModelLoadError, ModelNotFound, UsageError
from clipseek.model import hub, open_clip
from clipseek.model.base import Encoder
from clipseek.model.devices import check_device_name, resolve_device
from clipseek.model.hf import HFEncoder, quiet_transformers
from clipseek.model.pickles import pickle_refusal
from clipseek.model.quantize import quantize_int8

DEFAULT_MODEL = os.environ.get("CLIPSEEK_MODEL", "openai/clip-vit-base-patch32")
BUNDLED_MODELS = {"clipseek-demo": Path(__file__).parent / "bundled" / "clipseek-demo"}
BACKENDS = ("torch", "onnx", "auto")
ONNX_DTYPES = ("auto", "fp32", "float32", "int8")
log = logging.getLogger("clipseek.model")
NO_ONNX = "the ONNX backend needs onnxruntime: pip install 'clipseek[onnx]' (or use --backend torch)"
DTYPES = {"fp32": "float32", "float32": "float32", "fp16": "float16", "float16": "float16",
          "half": "float16", "bf16": "bfloat16", "bfloat16": "bfloat16"}


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
    hub.offline()  # no network: the local cache only, at once (see model/hub.py)
    return name_or_path, False


def open_clip_source(name_or_path: str) -> tuple[str, bool] | None:
    """(hub repo or directory, is local) when `name_or_path` names an open_clip checkpoint:
    `hf-hub:ORG/NAME`, or a directory with open_clip_config.json and no transformers config.json."""
    if name_or_path.startswith(open_clip.HUB_PREFIX):
        repo = name_or_path[len(open_clip.HUB_PREFIX):]
        if repo.count("/") != 1 or not all(repo.split("/")):
            raise UsageError(f"{name_or_path!r}: expected hf-hub:ORG/NAME")
        hub.offline()
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
               framing: str = "center", revision: str | None = None, backend: str = "torch",
               int8_text: bool = False) -> Encoder:
    """Load a CLIP-like checkpoint as an Encoder.

    `name_or_path`: a hub id, `hf-hub:ORG/NAME` (open_clip format), a local checkpoint directory, a
    bundled name ("clipseek-demo"), or an ONNX export folder (`clipseek export onnx`). `backend`: "torch"
    (transformers), "onnx" (ONNX Runtime on
    the CPU: the checkpoint is exported into the cache on first use) or "auto" (ONNX on the CPU when
    onnxruntime is installed and the dtype is fp32 or int8; torch on a GPU; torch, with one logged line,
    when the export fails). `int8_text`: quantize the text tower to int8 too (CPU; faster queries).
    """
    check_framing(framing)  # a bad argument fails before any weights are read
    check_device_name(device)
    chosen = choose_backend(backend, device, dtype, name_or_path)
    if chosen == "onnx":
        from clipseek.model.export import ExportError

        try:
            return _load_onnx(name_or_path, framing, dtype == "int8", int8_text, revision)
        except ExportError as e:
            if backend != "auto":
                raise
            log.warning("%s; using the torch backend", e)
    return _load_torch(name_or_path, device, dtype, framing, revision, int8_text)


def choose_backend(backend: str, device: str, dtype: str, name_or_path: str = "") -> str:
    """"torch" or "onnx" for a requested backend (see `load_model`); UsageError for impossible asks."""
    from clipseek.model.onnx_store import is_export

    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    export = os.path.isdir(os.path.expanduser(name_or_path)) and is_export(os.path.expanduser(name_or_path))
    if backend == "torch" and export:
        raise UsageError(f"{name_or_path} is an ONNX export folder: load it with --backend onnx (or auto)")
    if backend == "onnx" or (backend == "auto" and export):
        if not onnx_available():
            raise UsageError(NO_ONNX)
        if device not in ("auto", "cpu") or dtype not in ONNX_DTYPES:
            raise UsageError(f"--backend onnx runs on the CPU with --dtype fp32 or int8, not "
                             f"--device {device} --dtype {dtype}")
        return "onnx"
    if backend == "auto" and device in ("auto", "cpu") and dtype in ONNX_DTYPES and onnx_available() \
            and not (device == "auto" and gpu_likely()):
        return "onnx"
    return "torch"


def onnx_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def gpu_likely() -> bool:
    """A GPU torch would pick for --device auto, guessed without importing torch (CUDA, ROCm, MPS)."""
    import platform

    if sys.platform == "darwin":
        return platform.machine() == "arm64"
    return any(os.path.exists(p) for p in ("/dev/nvidia0", "/dev/nvidiactl", "/dev/kfd"))


def _load_onnx(name_or_path: str, framing: str, int8: bool, int8_text: bool, revision: str | None):
    from clipseek.model import onnx_cache
    from clipseek.model.onnx_store import is_export

    path = os.path.expanduser(name_or_path)
    if os.path.isdir(path) and is_export(path):
        return onnx_cache.open_folder(path, name_or_path, framing, int8, int8_text)
    oc = open_clip_source(name_or_path)
    if oc is not None:  # identity as open_clip's loader records it; None: known once loaded
        source, local = oc
        identity = _local_identity(source, open_clip.CONFIG_NAME) if local else None
    else:
        source, local = resolve_checkpoint(name_or_path)
        identity = _local_identity(source) if local else onnx_cache.hub_identity(name_or_path, revision)
    return onnx_cache.cached_encoder(
        name_or_path, identity, local, framing, int8, int8_text,
        load_torch=lambda: _load_torch(name_or_path, "cpu", "fp32", "center", revision))


def export_onnx(name_or_path: str, out: str, int8: bool = False, revision: str | None = None) -> dict:
    """Write a self-contained ONNX export folder of a checkpoint at `out` (`clipseek export onnx`);
    returns its manifest. `out` must not exist, be empty, or be an earlier export (replaced)."""
    from clipseek.model.export import export_encoder
    from clipseek.model.onnx_store import is_export

    if not onnx_available():
        raise UsageError(NO_ONNX)
    target = Path(out).expanduser()
    if target.exists() and not (target.is_dir() and (is_export(target) or not any(target.iterdir()))):
        raise UsageError(f"{out} exists and is not an ONNX export folder: give a new or empty folder")
    from clipseek.model.onnx_store import register_export

    doc = export_encoder(_load_torch(name_or_path, "cpu", "fp32", "center", revision), target, int8=int8,
                         release=True)
    register_export(target, doc)  # `--backend onnx` with this checkpoint now uses it (model/onnx_cache.py)
    return doc


def _load_torch(name_or_path: str, device: str, dtype: str, framing: str, revision: str | None,
                int8_text: bool = False) -> HFEncoder:
    """The torch backend: any `transformers` model with get_image_features/get_text_features, or an
    open_clip-format CLIP ViT (`hf-hub:ORG/NAME`, or a directory)."""
    import torch

    quiet_transformers()
    dev = resolve_device(device)
    int8 = dtype == "int8"
    if int8 and dev != "cpu":
        raise UsageError("--dtype int8 (dynamic quantization) runs on the CPU only; use --device cpu")
    torch_dtype = torch.float32 if int8 else resolve_dtype(dtype, dev)
    if torch_dtype == torch.bfloat16 and dev == "cpu" and not cpu_has_bf16():
        log.warning("--dtype bf16 on this CPU (no native bf16: avx512_bf16/amx_bf16) runs slower than fp32 "
                    "(8x slower on AVX2); faster: --dtype int8, or --backend onnx")
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
    enc = HFEncoder(model, tokenizer, cfg, dev, name=name_or_path, identity=identity, logit_bias=bias)
    if int8_text and dev == "cpu":
        quantize_int8(enc.model, towers=("text",))
    return enc


def _hub_open_clip_fallback(name_or_path: str) -> tuple[str, bool] | None:
    """A plain hub id that holds an open_clip checkpoint (and no transformers one)."""
    if Path(name_or_path).expanduser().exists() or name_or_path in BUNDLED_MODELS \
            or name_or_path.count("/") != 1:
        return None
    files = open_clip.hub_files(name_or_path, None, name_or_path)
    return (name_or_path, False) if files.fetch(open_clip.CONFIG_NAME) is not None else None


def _load_transformers(name_or_path: str, revision: str | None, torch_dtype, framing: str):
    """(model, tokenizer, preprocess cfg, identity) of a `transformers` checkpoint: the model and its
    tokenizer; the preprocessing is read from the saved processor JSON (no image processor object)."""
    from transformers import AutoModel, AutoTokenizer

    source, local = resolve_checkpoint(name_or_path)
    try:
        model = AutoModel.from_pretrained(source, revision=revision, dtype=torch_dtype)
        tokenizer = AutoTokenizer.from_pretrained(source, revision=revision)
        cfg = _saved_preprocess_cfg(source, local, revision, framing)
    except (OSError, ValueError, pickle.UnpicklingError) as e:
        refused = pickle_refusal(name_or_path, e)
        if refused:
            raise ModelLoadError(refused) from None
        if local:
            raise ModelLoadError(f"cannot load checkpoint {source}: {str(e).splitlines()[0]}") from None
        if hub.offline():
            raise ModelLoadError(
                f"cannot load {name_or_path!r}: it is not in the local Hugging Face cache and the hub is not "
                "reachable (or HF_HUB_OFFLINE=1); `--model clipseek-demo` works offline (the small bundled "
                "model), or give a checkpoint folder with --model PATH, or run once with network access to "
                "download it") from None
        raise ModelLoadError(
            f"cannot load {name_or_path!r} from the Hugging Face hub: not found there, or neither a "
            f"transformers checkpoint (config.json) nor an open_clip one ({open_clip.CONFIG_NAME}); pass a "
            "checkpoint folder with --model PATH, or `--model clipseek-demo` (bundled, offline)") from None
    if not (hasattr(model, "get_image_features") and hasattr(model, "get_text_features")):
        raise ModelLoadError(f"{name_or_path}: {type(model).__name__} has no get_image_features/"
                             "get_text_features; not a CLIP-like model")
    identity = _local_identity(source) if local else (
        getattr(model.config, "_commit_hash", None) or revision or "main")
    return model, tokenizer, cfg, identity


def _saved_preprocess_cfg(source: str, local: bool, revision: str | None, framing: str) -> PreprocessCfg:
    """The checkpoint's preprocessing from its `preprocessor_config.json` / `processor_config.json`
    (`PreprocessCfg.from_config`: CLIP's and SigLIP's processors), else from transformers' own image
    processor (other processor types)."""
    import json

    for name in ("preprocessor_config.json", "processor_config.json"):
        path: Path | None
        if local:
            path = Path(source) / name
            path = path if path.is_file() else None
        else:
            from huggingface_hub import try_to_load_from_cache

            found = try_to_load_from_cache(source, name, revision=revision)
            path = Path(found) if isinstance(found, str) else None
        if path is not None:
            try:
                return PreprocessCfg.from_config(json.loads(path.read_text("utf-8")), framing)
            except ValueError:  # a processor type from_config does not know
                break
    from transformers import AutoImageProcessor

    return PreprocessCfg.from_processor(AutoImageProcessor.from_pretrained(source, revision=revision), framing)


def cpu_has_bf16(cpuinfo: str | None = None) -> bool:
    """The CPU computes bf16 natively (x86 avx512_bf16 / amx_bf16, Arm bf16); False when unknown."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read(1 << 16)
        except OSError:
            return False
    flags = set()
    for line in cpuinfo.splitlines():
        if line.lower().startswith(("flags", "features")):
            flags.update(line.split(":", 1)[-1].split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def load_preprocess_cfg(name_or_path: str, framing: str = "center",
                        revision: str | None = None) -> PreprocessCfg:
    """The checkpoint's preprocessing without its weights (a driver that only plans the work)."""
    oc = open_clip_source(name_or_path)
    if oc is not None:
        files = _open_clip_files(name_or_path, *oc, revision)
        config = open_clip.read_config(files, name_or_path)
        arch = open_clip.parse_config(config, name_or_path)
        return open_clip.preprocess_cfg(config, arch.image_size, name_or_path, framing)
    source, local = resolve_checkpoint(name_or_path)
    try:
        return _saved_preprocess_cfg(source, local, revision, framing)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"cannot load the image processor of {name_or_path}: {str(e).splitlines()[0]}") from None


