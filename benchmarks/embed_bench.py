"""Image embedding speed: clipseek's end-to-end path vs the model alone, and vs the per-image loop of the
original scripts.

Full-size ViT-B/32 (CLIPConfig defaults, patch 32, random weights) over N JPEGs of 1024x768 on disk.
Baseline, in the same process: for each file, PIL open -> `processor(images=img)` -> `get_image_features`
on one image. Ours, for each backend x dtype: "model only" is `encode_pixels` on batches decoded
beforehand (the model's own speed), "end to end" is `clipseek.embed.stages.embed_all` from the JPEG
files (threaded decode with JPEG draft mode + batched encode); their ratio says how much decoding,
preprocessing and hashing take from the model (target >= 90%). Also reports the speed ratio to torch
fp32 end to end (today's default), cosine to the baseline vectors and top-10 search overlap.

    python benchmarks/embed_bench.py                 # 200 images, torch+onnx x fp32+int8 (+ torch bf16)
    python benchmarks/embed_bench.py --quick         # 40 images
    python benchmarks/embed_bench.py --workers 1,2   # decode threads: oversubscription check
    python benchmarks/embed_bench.py --device cuda --backends torch --options fp16,fp32   # on a GPU
"""

from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np
from _common import QUERIES, Timer, build_vit_b32


def write_jpegs(folder: str, n: int, size=(1024, 768)) -> list[str]:
    """Photo-like JPEGs: smooth random colour fields plus fine noise (realistic file sizes)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        p = os.path.join(folder, f"img{i:04d}.jpg")
        paths.append(p)
        if os.path.exists(p):
            continue
        small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        base = np.asarray(Image.fromarray(small).resize(size, Image.BICUBIC), dtype=np.int16)
        noise = rng.integers(-20, 21, base.shape, dtype=np.int16)
        Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).save(p, quality=90)
    return paths


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def baseline(ckpt: str, paths: list[str], device: str):
    """The original scripts' loop: one image at a time through CLIPProcessor and the model."""
    import torch
    from PIL import Image
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(ckpt).to(device).eval()
    processor = CLIPProcessor.from_pretrained(ckpt)

    def one(p):
        img = Image.open(p).convert("RGB")
        inputs = processor(images=img, return_tensors="pt").to(device)
        with torch.no_grad():
            out = model.get_image_features(**inputs)
        out = out if hasattr(out, "shape") else out.pooler_output
        return out[0].float().cpu().numpy()

    one(paths[0])  # warm-up
    with Timer() as t:
        vecs = unit(np.stack([one(p) for p in paths]))
    with torch.no_grad():
        tok = processor.tokenizer(QUERIES, padding=True, return_tensors="pt").to(device)
        out = model.get_text_features(**tok)
        text = unit((out if hasattr(out, "shape") else out.pooler_output).float().cpu().numpy())
    return vecs, text, t.s


def ours(ckpt: str, paths: list[str], device: str, backend: str, dtype: str, batch_size: int, workers: int,
         pixels: np.ndarray | None):
    """(vectors, text vectors, end-to-end seconds, model-only seconds) for one backend and dtype."""
    from clipseek import load_model
    from clipseek.embed.stages import embed_all

    enc = load_model(ckpt, device=device, dtype=dtype, backend=backend)
    embed_all(enc, paths[:batch_size], batch_size=batch_size, workers=workers)  # warm-up
    with Timer() as t:
        res = embed_all(enc, paths, batch_size=batch_size, workers=workers)
    assert res.paths == paths and not res.skipped
    model_s = None
    if pixels is not None:
        with Timer() as m:
            for i in range(0, len(pixels), batch_size):
                enc.encode_pixels(pixels[i:i + batch_size])
        model_s = m.s
    return res.vectors, enc.encode_texts(QUERIES), t.s, model_s


def predecode(ckpt: str, paths: list[str]) -> np.ndarray:
    """The files' model inputs, decoded and preprocessed once (clipseek's own preprocessing)."""
    from clipseek.core.images import open_image
    from clipseek.core.preprocess import PreprocessCfg, preprocess
    from clipseek.model.onnx_store import processor_config

    cfg = PreprocessCfg.from_config(processor_config(ckpt))
    return np.stack([preprocess(open_image(p, draft_size=cfg.input_size), cfg) for p in paths])


def overlap(a_gallery, a_queries, b_gallery, b_queries, k=10) -> float:
    ta = np.argsort(-(a_queries @ a_gallery.T), axis=1)[:, :k]
    tb = np.argsort(-(b_queries @ b_gallery.T), axis=1)[:, :k]
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(ta, tb)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--quick", action="store_true", help="40 images")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--backends", default="torch,onnx")
    ap.add_argument("--options", default="fp32,int8,bf16", help="dtypes (bf16: torch only)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", default="2", help="decode threads; a list (1,2) compares them")
    ap.add_argument("--no-baseline", action="store_true", help="skip the per-image loop")
    ap.add_argument("--work-dir", default=os.path.join(tempfile.gettempdir(), "clipseek-bench"))
    args = ap.parse_args()
    n = 40 if args.quick else args.n
    os.makedirs(os.path.join(args.work_dir, "jpegs"), exist_ok=True)
    ckpt = build_vit_b32(os.path.join(args.work_dir, "vit-b32-random"))
    paths = write_jpegs(os.path.join(args.work_dir, "jpegs"), n)
    import torch

    print(f"{n} JPEGs 1024x768, ViT-B/32 (random weights), device={args.device}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}, torch threads={torch.get_num_threads()}, batch={args.batch_size}")
    pixels = predecode(ckpt, paths) if args.device == "cpu" else None
    if args.no_baseline:
        base_vecs = base_text = base_s = None
    else:
        base_vecs, base_text, base_s = baseline(ckpt, paths, args.device)
        print(f"{'baseline per-image loop':24s} end to end {n / base_s:6.1f} img/s")
    ref_s = None
    for backend in args.backends.split(","):
        for dtype in args.options.split(","):
            if backend == "onnx" and dtype not in ("fp32", "int8"):
                continue
            for workers in (int(w) for w in args.workers.split(",")):
                vecs, text, s, model_s = ours(ckpt, paths, args.device, backend, dtype, args.batch_size,
                                              workers, pixels)
                ref_s = ref_s or (s if (backend, dtype) == ("torch", "fp32") else None)
                line = f"{backend + ' ' + dtype + f' w{workers}':24s} end to end {n / s:6.1f} img/s"
                if model_s:
                    line += f"  model only {n / model_s:6.1f} img/s  end/model {model_s / s:5.0%}"
                if ref_s:
                    line += f"  x{ref_s / s:.2f} torch fp32 end to end"
                if base_vecs is not None:
                    cos = np.sum(vecs * base_vecs, axis=1)
                    line += (f"  cosine min {cos.min():.5f} mean {cos.mean():.5f}  top-10 overlap text "
                             f"{overlap(vecs, text, base_vecs, base_text):.3f} "
                             f"image {overlap(vecs, vecs, base_vecs, base_vecs):.3f}")
                print(line, flush=True)


if __name__ == "__main__":
    main()
