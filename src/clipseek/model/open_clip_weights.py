"""open_clip's CLIP ViT state dict -> the `transformers` CLIPModel's, key by key, checked before loading.

open_clip (`model.py`, `transformer.py`) names a standard CLIP ViT's weights `visual.*` (image tower),
`token_embedding`/`positional_embedding`/`transformer.*`/`ln_final`/`text_projection` (text tower; under
`text.` when the config says `custom_text`), `logit_scale` and, for sigmoid-trained models, `logit_bias`.
Attention is one `in_proj` matrix (q, k, v stacked) where transformers has three; projections are
stored (in, out) where transformers' Linear is (out, in). Every source key must be used and every target
key filled with the right shape, or nothing is loaded (a half-loaded model would give wrong vectors
without a word).
"""

from __future__ import annotations

from typing import Callable

from clipseek.errors import ModelLoadError

# Keys some open_clip / OpenAI checkpoints carry that are not weights (buffers rebuilt at load time).
IGNORED = {"attn_mask", "text.attn_mask", "input_resolution", "context_length", "vocab_size"}

BLOCK = {  # one residual block: open_clip suffix -> transformers suffix (attention in_proj split apart)
    "ln_1.weight": "layer_norm1.weight", "ln_1.bias": "layer_norm1.bias",
    "attn.out_proj.weight": "self_attn.out_proj.weight", "attn.out_proj.bias": "self_attn.out_proj.bias",
    "ln_2.weight": "layer_norm2.weight", "ln_2.bias": "layer_norm2.bias",
    "mlp.c_fc.weight": "mlp.fc1.weight", "mlp.c_fc.bias": "mlp.fc1.bias",
    "mlp.c_proj.weight": "mlp.fc2.weight", "mlp.c_proj.bias": "mlp.fc2.bias",
}


def _tower(src: str, dst: str, layers: int) -> dict[str, tuple[str, Callable]]:
    """target key -> (source key, transform) for `layers` residual blocks; `src` is the source
    prefix with its dot ("visual.", "text." or "")."""
    out: dict[str, tuple[str, Callable]] = {}
    same = lambda t: t  # noqa: E731
    for i in range(layers):
        s, d = f"{src}transformer.resblocks.{i}.", f"{dst}.encoder.layers.{i}."
        for a, b in BLOCK.items():
            out[d + b] = (s + a, same)
        for j, qkv in enumerate("qkv"):
            out[d + f"self_attn.{qkv}_proj.weight"] = (s + "attn.in_proj_weight", _third(j))
            out[d + f"self_attn.{qkv}_proj.bias"] = (s + "attn.in_proj_bias", _third(j))
    return out


def _third(j: int) -> Callable:
    return lambda t: t.chunk(3, dim=0)[j]


def key_map(vision_layers: int, text_layers: int, custom_text: bool) -> dict[str, tuple[str, Callable]]:
    """Every transformers CLIPModel weight -> (the open_clip key it comes from, how to turn it)."""
    same = lambda t: t  # noqa: E731
    transpose = lambda t: t.t()  # noqa: E731
    t = "text." if custom_text else ""
    m = {
        "vision_model.embeddings.class_embedding": ("visual.class_embedding", same),
        "vision_model.embeddings.patch_embedding.weight": ("visual.conv1.weight", same),
        "vision_model.embeddings.position_embedding.weight": ("visual.positional_embedding", same),
        "vision_model.pre_layrnorm.weight": ("visual.ln_pre.weight", same),
        "vision_model.pre_layrnorm.bias": ("visual.ln_pre.bias", same),
        "vision_model.post_layernorm.weight": ("visual.ln_post.weight", same),
        "vision_model.post_layernorm.bias": ("visual.ln_post.bias", same),
        "visual_projection.weight": ("visual.proj", transpose),
        "text_model.embeddings.token_embedding.weight": (t + "token_embedding.weight", same),
        "text_model.embeddings.position_embedding.weight": (t + "positional_embedding", same),
        "text_model.final_layer_norm.weight": (t + "ln_final.weight", same),
        "text_model.final_layer_norm.bias": (t + "ln_final.bias", same),
        "text_projection.weight": (t + "text_projection", transpose),
        "logit_scale": ("logit_scale", same),
    }
    m.update(_tower("visual.", "vision_model", vision_layers))
    m.update(_tower(t, "text_model", text_layers))
    return m


def convert(state: dict, target_shapes: dict[str, tuple], vision_layers: int, text_layers: int,
            custom_text: bool, where: str) -> tuple[dict, float | None]:
    """(the transformers state dict, the logit bias or None). ModelLoadError naming the first missing,
    unused or wrongly shaped weights, before anything is loaded."""
    state = _unwrap(state)
    bias = state.pop("logit_bias", None)
    mapping = key_map(vision_layers, text_layers, custom_text)
    missing = sorted({src for dst, (src, _) in mapping.items() if dst in target_shapes and src not in state})
    if missing:
        raise ModelLoadError(f"{where}: the weights do not match the open_clip config: {len(missing)} missing "
                             f"(e.g. {', '.join(missing[:3])})")
    used = {src for src, _ in mapping.values()}
    extra = sorted(k for k in state if k not in used and k not in IGNORED)
    if extra:
        raise ModelLoadError(f"{where}: the weights do not match the open_clip config: {len(extra)} unexpected "
                             f"(e.g. {', '.join(extra[:3])}); not a standard CLIP ViT, or another config")
    out = {}
    for dst, shape in target_shapes.items():
        if dst not in mapping:
            raise ModelLoadError(f"{where}: no open_clip weight for {dst}")  # a transformers change
        src, fn = mapping[dst]
        t = fn(state[src])
        if dst == "logit_scale" and t.numel() == 1:
            t = t.reshape(shape)
        if tuple(t.shape) != tuple(shape):
            raise ModelLoadError(f"{where}: weight {src} has shape {tuple(state[src].shape)}, but the open_clip "
                                 f"config needs {tuple(shape)} for it: the weights do not match the config")
        out[dst] = t.contiguous()
    if bias is not None and bias.numel() != 1:
        raise ModelLoadError(f"{where}: logit_bias has {bias.numel()} values, expected one")
    return out, (None if bias is None else float(bias.reshape(-1)[0]))


def _unwrap(state: dict) -> dict:
    """A training checkpoint's {"state_dict": ...} and DistributedDataParallel's "module." prefix."""
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return dict(state)
