"""open_clip-format checkpoints without the open_clip package: `hf-hub:ORG/NAME`, or a directory holding
`open_clip_config.json` and `open_clip_model.safetensors` (or `open_clip_pytorch_model.bin`).

The architectures covered are open_clip's standard CLIP ViT (OpenAI-style and the LAION, DataComp, DFN
and MetaCLIP ViT-B/32, B/16, L/14, H/14, bigG/14 releases, QuickGELU or GELU, any square input size):
their weights are mapped onto the `transformers` CLIPModel (`open_clip_weights.py`), the tokenizer is
CLIP's BPE (the checkpoint's files, else the vocabulary shipped with clipseek: `clip_bpe.py`) and the
preprocessing (size, mean/std, resize mode, interpolation, torchvision's centre-crop offsets) is read
from the config, so the rest of clipseek sees an ordinary Encoder. Anything else (timm towers such as
ConvNeXt, EVA or SigLIP's ViT; ResNets; CoCa; Hugging Face text towers; layer scale, attention pooling,
...) is refused with one line naming it, before any weights are read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from clipseek.core.preprocess import PreprocessCfg, check_framing
from clipseek.errors import ModelLoadError

CONFIG_NAME = "open_clip_config.json"
WEIGHT_NAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
HUB_PREFIX = "hf-hub:"
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
RESAMPLE = {"bicubic": 3, "bilinear": 2, "random": 3}  # PIL codes; "random" is bicubic at inference

# Config options a standard CLIP ViT may set to anything (training-only, or read below), and options
# that must keep their default (value shown) for the weights to be a standard CLIP ViT.
VISION_FREE = {"image_size", "layers", "width", "head_width", "mlp_ratio", "patch_size", "patch_dropout",
               "output_tokens", "attn_pooler_queries", "attn_pooler_heads", "timm_model_pretrained",
               "timm_pool", "timm_proj", "timm_proj_bias", "timm_drop", "timm_drop_path"}
TEXT_FREE = {"context_length", "vocab_size", "width", "heads", "layers", "mlp_ratio", "output_tokens",
             "pad_id", "eos_id", "hf_model_pretrained", "hf_proj_type", "hf_pooler_type"}
COMMON_DEFAULTS = {"ls_init_value": None, "act_kwargs": None, "norm_kwargs": None, "block_type": None,
                   "qk_norm": False, "scaled_cosine_attn": False, "scale_heads": False,
                   "scale_attn_inner": False, "scale_attn": False, "scale_fc": False,
                   "final_ln_after_pool": False}
VISION_DEFAULTS = {**COMMON_DEFAULTS, "attentional_pool": False, "no_ln_pre": False,
                   "pos_embed_type": "learnable", "pool_type": "tok", "timm_model_name": None}
TEXT_DEFAULTS = {**COMMON_DEFAULTS, "hf_model_name": None, "hf_tokenizer_name": None, "tokenizer_mode": None,
                 "embed_cls": False, "no_causal_mask": False, "pool_type": "argmax", "proj_bias": False,
                 "proj_type": "linear"}
MODEL_FREE = {"embed_dim", "quick_gelu", "vision_cfg", "text_cfg", "custom_text", "cast_dtype",
              "init_logit_scale", "init_logit_bias", "nonscalar_logit_scale"}


@dataclass(frozen=True)
class OpenClipArch:
    """What a standard open_clip CLIP ViT config says, in the numbers a CLIPConfig needs."""

    embed_dim: int
    quick_gelu: bool
    custom_text: bool
    image_size: int
    patch_size: int
    width: int
    layers: int
    heads: int
    mlp_width: int
    context_length: int
    vocab_size: int
    text_width: int
    text_heads: int
    text_layers: int
    text_mlp_width: int


def is_open_clip_dir(path: str | Path) -> bool:
    p = Path(path).expanduser()
    return p.is_dir() and (p / CONFIG_NAME).is_file()


def _refuse(where: str, what: str) -> ModelLoadError:
    return ModelLoadError(f"{where}: unsupported open_clip architecture: {what}; clipseek loads open_clip's "
                          "standard CLIP ViT only (use the open_clip package for this one)")


def _check_options(cfg: dict, free: set, defaults: dict, tower: str, where: str) -> None:
    if tower == "vision_cfg" and cfg.get("timm_model_name"):
        raise _refuse(where, f"timm image tower {cfg['timm_model_name']!r} (ConvNeXt, EVA, SigLIP, "
                             "MobileCLIP, ... are timm towers)")
    if tower == "vision_cfg" and isinstance(cfg.get("layers"), (list, tuple)):
        raise _refuse(where, "ResNet image tower (layers given per stage)")
    if tower == "text_cfg" and cfg.get("hf_model_name"):
        raise _refuse(where, f"Hugging Face text tower {cfg['hf_model_name']!r}")
    for key, value in cfg.items():
        if key in free:
            continue
        if key not in defaults:
            raise _refuse(where, f"unknown {tower} option {key!r}")
        if value not in (defaults[key], None) and not (defaults[key] is None and value in ({}, False)):
            raise _refuse(where, f"{tower} {key}={value!r}")


def parse_config(config: dict, where: str) -> OpenClipArch:
    """The architecture of an `open_clip_config.json` (its `model_cfg`), or ModelLoadError saying why not."""
    model = config.get("model_cfg") if isinstance(config, dict) else None
    if not isinstance(model, dict) or not isinstance(model.get("vision_cfg"), dict) \
            or not isinstance(model.get("text_cfg"), dict):
        raise ModelLoadError(f"{where}: {CONFIG_NAME} has no model_cfg with vision_cfg and text_cfg")
    if "multimodal_cfg" in model:
        raise _refuse(where, "CoCa (a captioning decoder; multimodal_cfg)")
    unknown = sorted(set(model) - MODEL_FREE)
    if unknown:
        raise _refuse(where, f"model_cfg option {unknown[0]!r}")
    v, t = model["vision_cfg"], model["text_cfg"]
    _check_options(v, VISION_FREE, VISION_DEFAULTS, "vision_cfg", where)
    _check_options(t, TEXT_FREE, TEXT_DEFAULTS, "text_cfg", where)
    size = v.get("image_size", 224)
    if isinstance(size, (list, tuple)):
        if len(set(size)) != 1:
            raise _refuse(where, f"non-square input size {tuple(size)}")
        size = size[0]
    width, text_width = int(v.get("width", 768)), int(t.get("width", 512))
    return OpenClipArch(
        embed_dim=int(model["embed_dim"]), quick_gelu=bool(model.get("quick_gelu", False)),
        custom_text=bool(model.get("custom_text", False)), image_size=int(size),
        patch_size=int(v.get("patch_size", 16)), width=width, layers=int(v.get("layers", 12)),
        heads=width // int(v.get("head_width", 64)), mlp_width=int(width * float(v.get("mlp_ratio", 4.0))),
        context_length=int(t.get("context_length", 77)), vocab_size=int(t.get("vocab_size", 49408)),
        text_width=text_width, text_heads=int(t.get("heads", 8)), text_layers=int(t.get("layers", 12)),
        text_mlp_width=int(text_width * float(t.get("mlp_ratio", 4.0))))


def clip_config(arch: OpenClipArch, bos_id: int, eos_id: int, pad_id: int):
    """The `transformers` CLIPConfig of the same network."""
    from transformers import CLIPConfig

    act = "quick_gelu" if arch.quick_gelu else "gelu"
    text = dict(vocab_size=arch.vocab_size, hidden_size=arch.text_width, intermediate_size=arch.text_mlp_width,
                num_hidden_layers=arch.text_layers, num_attention_heads=arch.text_heads,
                max_position_embeddings=arch.context_length, hidden_act=act, layer_norm_eps=1e-5,
                bos_token_id=bos_id, eos_token_id=eos_id, pad_token_id=pad_id)
    vision = dict(hidden_size=arch.width, intermediate_size=arch.mlp_width, num_hidden_layers=arch.layers,
                  num_attention_heads=arch.heads, image_size=arch.image_size, patch_size=arch.patch_size,
                  hidden_act=act, layer_norm_eps=1e-5)
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=arch.embed_dim)


def preprocess_cfg(config: dict, image_size: int, where: str, framing: str = "center") -> PreprocessCfg:
    """open_clip's inference transform for this config (its `preprocess_cfg`, open_clip's defaults
    otherwise): "shortest" = resize the short side + centre crop (torchvision's crop offsets),
    "squash" = resize to the exact size; mean/std; bicubic or bilinear."""
    check_framing(framing)
    pp = config.get("preprocess_cfg") or {}
    mode, interp = pp.get("resize_mode") or "shortest", pp.get("interpolation") or "bicubic"
    if interp not in RESAMPLE:
        raise ModelLoadError(f"{where}: unsupported open_clip interpolation {interp!r}")
    mean = tuple(float(x) for x in (pp.get("mean") or OPENAI_MEAN))
    std = tuple(float(x) for x in (pp.get("std") or OPENAI_STD))
    if len(mean) != 3 or len(std) != 3:
        raise ModelLoadError(f"{where}: open_clip preprocess_cfg mean/std need 3 values")
    square = (image_size, image_size)
    if mode == "shortest":
        return PreprocessCfg(image_size, square, mean, std, RESAMPLE[interp],  # type: ignore[arg-type]
                             framing=framing, crop_rounding="round")
    if mode == "squash":
        return PreprocessCfg(square, None, mean, std, RESAMPLE[interp], framing=framing)  # type: ignore[arg-type]
    raise ModelLoadError(f"{where}: unsupported open_clip resize_mode {mode!r} (shortest and squash are supported)")


@dataclass
class Files:
    """Where an open_clip checkpoint's files come from: a local directory, or a hub repo (cached)."""

    fetch: Callable[[str], Path | None]   # file name -> local path, or None when the checkpoint lacks it
    identity: Callable[[], str]           # content hash (local) or hub commit
    offline: set[str] = field(default_factory=set)  # names not fetched because the hub was not reachable


def read_config(files: Files, where: str) -> dict:
    path = files.fetch(CONFIG_NAME)
    if path is None and CONFIG_NAME in files.offline:
        raise ModelLoadError(f"{where}: not in the Hugging Face cache and the hub is not reachable (offline); "
                             "download it once with network access, or pass a local checkpoint directory")
    if path is None:
        raise ModelLoadError(f"{where}: no {CONFIG_NAME}: not an open_clip checkpoint")
    try:
        return json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{where}: cannot read {CONFIG_NAME}: {str(e).splitlines()[0]}") from None


def local_files(path: str | Path, identity: Callable[[], str]) -> Files:
    root = Path(path).expanduser()
    return Files(lambda name: root / name if (root / name).is_file() else None, identity)


def hub_files(repo: str, revision: str | None, where: str) -> Files:
    """Files of a hub repo through the Hugging Face cache (HF_HUB_OFFLINE=1: the cache only)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
    )

    seen: list[Path] = []
    offline: set[str] = set()

    def fetch(name: str) -> Path | None:
        try:
            path = Path(hf_hub_download(repo, name, revision=revision))
        except LocalEntryNotFoundError:  # offline and not cached: required files fail later, by name
            offline.add(name)
            return None
        except EntryNotFoundError:
            return None
        except (HfHubHTTPError, OSError, ValueError) as e:
            raise ModelLoadError(f"{where}: the Hugging Face hub answered: "
                                 f"{str(e).splitlines()[0]}") from None
        seen.append(path)
        return path

    def identity() -> str:  # .../snapshots/<commit>/file
        snap = next((p.parent for p in seen if p.parent.parent.name == "snapshots"), None)
        return snap.name if snap is not None else (revision or "main")

    return Files(fetch, identity, offline)


def load_tokenizer(files: Files, arch: OpenClipArch, where: str):
    """CLIP's BPE tokenizer (open_clip's default), from the checkpoint's own vocabulary files when it has
    them (`vocab.json` + `merges.txt`, or `tokenizer.json`; the hub's open_clip checkpoints usually do),
    else the CLIP vocabulary shipped with clipseek (`model/clip_bpe.py`: open_clip's own file, no
    network). Other tokenizer settings in the checkpoint are not read: open_clip does not read them either."""
    from transformers import CLIPTokenizer

    from clipseek.model.clip_bpe import clip_tokenizer

    n = arch.context_length
    try:
        vocab, merges = files.fetch("vocab.json"), files.fetch("merges.txt")
        if vocab is not None and merges is not None:
            tok = CLIPTokenizer(str(vocab), str(merges), model_max_length=n)  # positional: 4.x and 5.x
        elif (single := files.fetch("tokenizer.json")) is not None:
            tok = CLIPTokenizer(tokenizer_file=str(single), model_max_length=n)
        else:
            tok = clip_tokenizer(n)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{where}: cannot read its tokenizer files: {str(e).splitlines()[0]}") from None
    if len(tok) != arch.vocab_size or tok.eos_token_id != len(tok) - 1:
        raise ModelLoadError(f"{where}: the tokenizer has {len(tok)} tokens (end of text = "
                             f"{tok.eos_token_id}), the open_clip config {arch.vocab_size}: they do not match")
    return tok


def read_weights(files: Files, where: str) -> dict:
    path = next((p for p in map(files.fetch, WEIGHT_NAMES) if p is not None), None)
    if path is None:
        raise ModelLoadError(f"{where}: no open_clip weights ({' or '.join(WEIGHT_NAMES)}; not downloaded, "
                             "or not in the Hugging Face cache when offline)")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        import torch

        from clipseek.model.pickles import old_torch_refusal, torch_unpickles_safely

        if not torch_unpickles_safely():
            raise ModelLoadError(old_torch_refusal(where, path.name))
        return torch.load(path, map_location="cpu", weights_only=True)
    except ModelLoadError:
        raise
    except Exception as e:  # a damaged or foreign file: its reader's error, in one line
        from clipseek.model.pickles import pickle_refusal

        raise ModelLoadError(pickle_refusal(where, e, path.name)
                             or f"{where}: cannot read {path.name}: {str(e).splitlines()[0]}") from None


def build_model(arch: OpenClipArch, tokenizer, state: dict, where: str, torch_dtype):
    """A CLIPModel holding the checkpoint's weights (all of them, checked), and the logit bias or None."""
    import torch
    from transformers import CLIPModel

    from clipseek.model.open_clip_weights import convert

    cfg = clip_config(arch, tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)
    with torch.device("meta"):  # no random init of weights that are about to be replaced
        model = CLIPModel(cfg)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    mapped, bias = convert(state, shapes, arch.layers, arch.text_layers, arch.custom_text, where)
    model.load_state_dict(mapped, strict=True, assign=True)
    for module in model.modules():  # non-persistent buffers are not in any checkpoint
        ids = getattr(module, "position_ids", None)
        if ids is not None and ids.is_meta:
            module.register_buffer("position_ids", torch.arange(ids.shape[-1]).expand(ids.shape), persistent=False)
    left = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if left:
        raise ModelLoadError(f"{where}: no weights for {', '.join(left[:3])}")
    return model.to(torch_dtype).eval(), bias


def load(files: Files, where: str, torch_dtype, framing: str = "center"):
    """(model, tokenizer, preprocess cfg, logit bias) of an open_clip checkpoint; ModelLoadError naming
    what is wrong (config, architecture, tokenizer, weights) before a model exists."""
    config = read_config(files, where)
    arch = parse_config(config, where)
    pre = preprocess_cfg(config, arch.image_size, where, framing)
    tokenizer = load_tokenizer(files, arch, where)
    model, bias = build_model(arch, tokenizer, read_weights(files, where), where, torch_dtype)
    return model, tokenizer, pre, bias
