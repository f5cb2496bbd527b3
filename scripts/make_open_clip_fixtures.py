"""Make the open_clip golden fixtures (tests/fixtures/open_clip/) with the real `open_clip` package.

clipseek loads open_clip-format checkpoints without open_clip; this script is the reference it is
checked against. Run it ONCE, in a scratch environment that has open_clip (it needs torchvision, whose
wheels do not load against the project's CPU torch), never in the project's venv:

    python3 -m venv /tmp/oc && /tmp/oc/bin/pip install open_clip_torch
    /tmp/oc/bin/python scripts/make_open_clip_fixtures.py --out tests/fixtures/open_clip

For each small random-init ViT config below it writes a checkpoint directory in open_clip's own format
(`open_clip_config.json` with `model_cfg` + `preprocess_cfg`, and `open_clip_model.safetensors` or
`open_clip_pytorch_model.bin`), reloads it with `open_clip.create_model_and_transforms("local-dir:DIR")`
(so the config is read the way open_clip reads a hub checkpoint, preprocessing included), and records:
the token ids, the preprocessed pixels, the unit image and text embeddings and the zero-shot
probabilities for a few drawn images (one square, three not: resize mode, interpolation and crop
offsets matter) and texts (one over the context length). All parameters are perturbed away from their
initial values (LayerNorm weights 1 and biases 0 would hide a swapped mapping).

The tokenizer is open_clip's own `SimpleTokenizer` (CLIP BPE, lower-casing), built from a small merges
file so the vocabulary stays tiny; its vocabulary is also written as `vocab.json` + `merges.txt` (the
files of a CLIP BPE tokenizer that `transformers` reads), as on the hub's open_clip checkpoints.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

WORDS = ["a", "photo", "of", "the", "cat", "dog", "red", "car", "blue", "sky", "small", "boat", "on",
         "lake", "picture", "tree", "green", "big", "house"]
TEXTS = ["a photo of a cat.", "A Photo of the DOG", "a small red car", "blue sky",
         "a picture of a big green tree on the lake by the house with a small boat and a red car "
         "and a cat and a dog under the blue sky"]  # longer than the context: truncated, EOT kept
IMAGES = {"square.png": (40, 40), "wide.png": (83, 50), "tall.png": (37, 81), "odd.png": (61, 44)}

CONFIGS = {
    # OpenAI-style: QuickGELU, non-224 input, CLIP's default preprocessing (shortest side, bicubic,
    # centre crop, OpenAI mean/std), safetensors weights.
    "vit-quickgelu-40": {
        "model_cfg": {
            "embed_dim": 24, "quick_gelu": True,
            "vision_cfg": {"image_size": 40, "layers": 2, "width": 48, "head_width": 16, "patch_size": 8},
            "text_cfg": {"context_length": 32, "width": 32, "heads": 2, "layers": 2},
        },
        "preprocess_cfg": {"interpolation": "bicubic", "resize_mode": "shortest"},
        "weights": "open_clip_model.safetensors",
    },
    # GELU, odd MLP ratio and head width, "custom_text" key layout, a learned logit bias (sigmoid
    # scoring), squash resize with bilinear interpolation and mean/std 0.5, a .bin checkpoint, and a
    # short context (24) that the long text overflows.
    "vit-gelu-48-squash": {
        "model_cfg": {
            "embed_dim": 16, "custom_text": True, "init_logit_bias": -3.0,
            "vision_cfg": {"image_size": 48, "layers": 2, "width": 40, "head_width": 20, "mlp_ratio": 2.5,
                           "patch_size": 12},
            "text_cfg": {"context_length": 24, "width": 24, "heads": 3, "layers": 2},
        },
        "preprocess_cfg": {"interpolation": "bilinear", "resize_mode": "squash",
                           "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
        "weights": "open_clip_pytorch_model.bin",
    },
}


def draw_image(name: str, size: tuple[int, int], seed: int) -> Image.Image:
    """A gradient with a few shapes and some noise: edges and texture that resampling changes."""
    rng = np.random.RandomState(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 / w, y * 255 / h, (x + y) * 127 / (w + h)], -1)
    base += rng.randn(h, w, 3) * 12
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    for _ in range(3):
        x0, y0 = rng.randint(0, w - 8), rng.randint(0, h - 8)
        box = [x0, y0, x0 + rng.randint(6, max(7, w // 2)), y0 + rng.randint(6, max(7, h // 2))]
        fill = tuple(int(c) for c in rng.randint(0, 256, 3))
        (d.ellipse if rng.rand() < 0.5 else d.rectangle)(box, fill=fill)
    return img


def tiny_tokenizer(tmp: Path, context_length: int):
    """open_clip's SimpleTokenizer over a small merges file that spells each word in WORDS."""
    from open_clip.tokenizer import SimpleTokenizer, bytes_to_unicode

    merges, known = [], set(bytes_to_unicode().values())
    known |= {s + "</w>" for s in list(known)}
    for word in WORDS:
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        cur = parts[0]
        for nxt in parts[1:]:
            if cur + nxt not in known:
                merges.append(f"{cur} {nxt}")
                known.add(cur + nxt)
            cur = cur + nxt
    bpe = tmp / "bpe.txt.gz"
    with gzip.open(bpe, "wt", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    return SimpleTokenizer(bpe_path=str(bpe), context_length=context_length), merges


def write_hf_tokenizer_files(tok, merges: list[str], out: Path) -> None:
    """vocab.json + merges.txt with the same ids (CLIP's special-token spellings)."""
    rename = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}
    vocab = {rename.get(k, k): v for k, v in tok.encoder.items()}
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), "utf-8")
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", "utf-8")


def perturb(model: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "logit_scale":
                p.fill_(float(np.log(20.0)))
            elif name != "logit_bias":
                p.add_(torch.randn(p.shape, generator=g) * 0.05)


def make_one(name: str, spec: dict, out_root: Path, seed: int) -> None:
    import open_clip

    out = out_root / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        tok, merges = tiny_tokenizer(Path(tmp), spec["model_cfg"]["text_cfg"]["context_length"])
    spec["model_cfg"]["text_cfg"]["vocab_size"] = tok.vocab_size
    config = {"model_cfg": spec["model_cfg"], "preprocess_cfg": spec["preprocess_cfg"]}
    (out / "open_clip_config.json").write_text(json.dumps(config, indent=2), "utf-8")
    torch.manual_seed(seed)
    model = open_clip.create_model(f"local-dir:{out}")  # no weights yet: random init
    perturb(model, seed)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if spec["weights"].endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file(state, str(out / spec["weights"]))
    else:
        torch.save(state, out / spec["weights"])
    write_hf_tokenizer_files(tok, merges, out)
    record(out, tok, seed)


def record(out: Path, tok, seed: int) -> None:
    """Reload through open_clip exactly as a user would, and write expected.json + expected.npz."""
    import open_clip

    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{out}")
    model.eval()
    images = {n: draw_image(n, size, seed + i) for i, (n, size) in enumerate(IMAGES.items())}
    for n, img in images.items():
        img.save(out / n)
    pixels = torch.stack([preprocess(Image.open(out / n)) for n in images])
    tokens = tok(TEXTS)
    with torch.no_grad():
        img_f = model.encode_image(pixels, normalize=True)
        txt_f = model.encode_text(tokens, normalize=True)
        logits = model.logit_scale.exp() * img_f @ txt_f.T
        bias = getattr(model, "logit_bias", None)
        probs = torch.sigmoid(logits + bias) if bias is not None else logits.softmax(dim=-1)
    np.savez_compressed(out / "expected.npz", pixels=pixels.numpy(), image_embeds=img_f.numpy(),
                        text_embeds=txt_f.numpy(), probs=probs.numpy(), tokens=tokens.numpy())
    meta = {"open_clip_version": open_clip.__version__, "torch_version": torch.__version__,
            "images": list(images), "texts": TEXTS,
            "scoring": "sigmoid" if bias is not None else "softmax",
            "logit_scale": float(model.logit_scale.detach().exp()),
            "logit_bias": None if bias is None else float(bias.detach())}
    (out / "expected.json").write_text(json.dumps(meta, indent=2), "utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="tests/fixtures/open_clip")
    args = ap.parse_args()
    for i, (name, spec) in enumerate(CONFIGS.items()):
        make_one(name, json.loads(json.dumps(spec)), Path(args.out), seed=100 + i)
        print(f"wrote {Path(args.out) / name}")


if __name__ == "__main__":
    main()
