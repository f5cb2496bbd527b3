"""Small CLIP checkpoints built from scratch: a word-level BPE vocabulary and a compact config.

Used by `clipseek train --scratch tiny|small` (the bundled demo model) and by the test fixtures. The vocabulary
is a valid CLIP BPE vocabulary: all 256 byte symbols (alone and word-final), plus merges that spell each
given word, so known words are one token and anything else still tokenizes, character by character.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Iterable

SIZES = {  # from-scratch presets (`clipseek train --scratch NAME`): keyword arguments of `tiny_config`
    "tiny": dict(image_size=32, patch_size=8, width=32, layers=2, heads=2, text_width=32, text_layers=2,
                 projection_dim=32),
    # the bundled clipseek-demo model's architecture
    "small": dict(image_size=64, patch_size=8, width=64, layers=6, heads=2, text_width=64, text_layers=3,
                  projection_dim=64, act="gelu", mlp_ratio=2),
}


@lru_cache(maxsize=1)
def _byte_symbols() -> list[str]:
    """GPT-2/CLIP's reversible byte -> printable unicode map (`clip_bpe.byte_pairs`), in byte order."""
    from clipseek.model.clip_bpe import byte_pairs

    table = dict(byte_pairs())
    return [chr(table[b]) for b in range(256)]


def build_vocab(words: Iterable[str]) -> tuple[dict[str, int], list[str]]:
    """(vocab, merges) for a CLIP BPE tokenizer where every given ASCII word is a single token."""
    symbols = _byte_symbols()
    vocab_list = symbols + [s + "</w>" for s in symbols]
    merges: list[str] = []
    known = set(vocab_list)
    for word in sorted(set(words)):
        if not word or not word.isascii() or len(word) < 2:
            continue
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        current = parts[0]
        for nxt in parts[1:]:
            merged = current + nxt
            if merged not in known:
                merges.append(f"{current} {nxt}")
                vocab_list.append(merged)
                known.add(merged)
            current = merged
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    return {tok: i for i, tok in enumerate(vocab_list)}, merges


def make_tokenizer(words: Iterable[str], max_length: int = 32):
    from clipseek.model.hf import quiet_transformers

    quiet_transformers()
    import json
    import tempfile
    from pathlib import Path

    from transformers import CLIPTokenizer

    vocab, merges = build_vocab(words)
    with tempfile.TemporaryDirectory() as tmp:  # file arguments work across transformers 4.x and 5.x
        vf, mf = Path(tmp, "vocab.json"), Path(tmp, "merges.txt")
        vf.write_text(json.dumps(vocab), "utf-8")
        mf.write_text("#version: 0.2\n" + "\n".join(merges) + "\n", "utf-8")
        tok = CLIPTokenizer(str(vf), str(mf), model_max_length=max_length)
    return tok


def tiny_config(vocab_size: int, *, image_size: int = 32, patch_size: int = 8, width: int = 64,
                layers: int = 2, heads: int = 2, text_width: int = 64, text_layers: int = 2,
                projection_dim: int = 64, max_text_len: int = 32, act: str = "quick_gelu", mlp_ratio: int = 4):
    """`act`: both towers' activation ("gelu" is one fused kernel on CPU; CLIP's "quick_gelu" is three
    element-wise ops, ~1.3x slower a training step at these sizes). `mlp_ratio`: the image tower's MLP
    width over `width` (the text tower keeps 4)."""
    from transformers import CLIPConfig

    text = dict(vocab_size=vocab_size, hidden_size=text_width, intermediate_size=text_width * 4, hidden_act=act,
                num_hidden_layers=text_layers, num_attention_heads=heads,
                max_position_embeddings=max_text_len, bos_token_id=vocab_size - 2,
                eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1)
    vision = dict(hidden_size=width, intermediate_size=width * mlp_ratio, num_hidden_layers=layers, hidden_act=act,
                  num_attention_heads=heads, image_size=image_size, patch_size=patch_size)
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection_dim)


def make_processor(image_size: int):
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(size={"shortest_edge": image_size},
                              crop_size={"height": image_size, "width": image_size})


def sincos_position_init(model, scale: float = 0.2) -> None:
    """Start the image tower's position embeddings as a 2-D sine-cosine grid (class token: zeros).

    A from-scratch ViT otherwise has to discover from data that its patches lie on a grid; with this
    start a small CLIP learns shapes much sooner (supervised shape probe, same CPU time: 62% vs 54%).
    The embeddings stay trainable and the checkpoint stays a standard CLIP one."""
    import torch

    weight = model.vision_model.embeddings.position_embedding.weight  # (1 + side*side, width)
    n, width = weight.shape
    side = int(round((n - 1) ** 0.5))
    if width % 4 or side * side + 1 != n:
        return
    y, x = torch.meshgrid(torch.arange(side, dtype=torch.float32), torch.arange(side, dtype=torch.float32),
                          indexing="ij")
    omega = 1.0 / 10000 ** (torch.arange(width // 4, dtype=torch.float32) / (width // 4))
    xs, ys = x.reshape(-1, 1) * omega, y.reshape(-1, 1) * omega
    grid = torch.cat([xs.sin(), xs.cos(), ys.sin(), ys.cos()], dim=1)
    with torch.no_grad():
        weight.zero_()
        weight[1:] = scale * grid


def save_new_checkpoint(out_dir: str, words: Iterable[str], seed: int = 0, **config_kwargs) -> str:
    """Create a randomly initialised CLIP with a word vocabulary and save it as a standard checkpoint."""
    import torch
    from transformers import CLIPModel, CLIPProcessor

    tok = make_tokenizer(words, max_length=config_kwargs.get("max_text_len", 32))
    cfg = tiny_config(len(tok), **config_kwargs)
    torch.manual_seed(seed)
    model = CLIPModel(cfg)
    sincos_position_init(model)
    model.save_pretrained(out_dir)
    CLIPProcessor(image_processor=make_processor(cfg.vision_config.image_size), tokenizer=tok
                  ).save_pretrained(out_dir)
    return out_dir
