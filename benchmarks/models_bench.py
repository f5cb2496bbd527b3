"""CPU speed of the recommended checkpoints' architectures, on random weights (`clipseek models`).

For each architecture of `src/clipseek/model/catalog.json` (`archs`) it builds the `transformers` model
with random weights (nothing is downloaded), counts its parameters, and times image encoding (batches of
--batch random 3xSxS inputs, the image tower + projection, as `clipseek index` runs it) and one text
query. The baseline, OpenAI's ViT-B/32 architecture, is timed again right before each architecture, in
the same process, and the speed is the ratio of the two: the machine's load (2 shared cores here) moves
both alike. One architecture per process keeps memory to one model (bigG/14 is 2.5 B parameters).

    PYTHONPATH=src python benchmarks/models_bench.py --arch clip-b16-224 --write   # one, into the catalog
    PYTHONPATH=src python benchmarks/models_bench.py --all --write                 # each in a subprocess
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

CATALOG = os.path.join(os.path.dirname(__file__), "..", "src", "clipseek", "model", "catalog.json")
BASELINE = "clip-b32-quickgelu-224"


def build(spec: dict):
    """A randomly initialised model of the architecture `spec` (catalog `archs` entry), in eval mode."""
    import torch
    from transformers import CLIPConfig, CLIPModel, SiglipConfig, SiglipModel

    text = dict(vocab_size=spec["vocab"], hidden_size=spec["text_width"], intermediate_size=spec["text_mlp"],
                num_hidden_layers=spec["text_layers"], num_attention_heads=spec["text_heads"],
                max_position_embeddings=spec["context"], hidden_act=spec["act"])
    vision = dict(hidden_size=spec["width"], intermediate_size=spec["mlp"], num_hidden_layers=spec["layers"],
                  num_attention_heads=spec["heads"], image_size=spec["image_size"],
                  patch_size=spec["patch_size"], hidden_act=spec["act"])
    if spec["kind"] == "clip":
        text.update(bos_token_id=spec["vocab"] - 2, eos_token_id=spec["vocab"] - 1, pad_token_id=spec["vocab"] - 1)
        cfg, cls = CLIPConfig(text_config=text, vision_config=vision, projection_dim=spec["embed_dim"]), CLIPModel
    else:
        cfg, cls = SiglipConfig(text_config=text, vision_config=vision), SiglipModel
    with torch.device("meta"):  # random init of 2.5 B parameters one by one is slow: fill them at once
        model = cls(cfg)
    model = model.to_empty(device="cpu")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # as a trained model: LayerNorm scale 1 (a tiny scale would make denormals)
        for name, p in model.named_parameters():
            if "norm" in name or "layrnorm" in name:
                p.fill_(1.0 if name.endswith("weight") else 0.0)
            elif name.endswith("bias"):
                p.zero_()
            else:
                p.normal_(0.0, 0.02, generator=g)
        for name, b in model.named_buffers():
            if name.endswith("position_ids"):
                b.copy_(torch.arange(b.shape[-1]).expand(b.shape))
    return model.eval()


def time_images(model, size: int, batch: int, seconds: float) -> float:
    """Images per CPU-second of get_image_features (this process's CPU time, not the wall clock: the
    cores here are shared, and other jobs' load would otherwise be in the number). The first batch
    warms up, unless it alone took over `seconds` (a big model: its first-call overhead is then lost
    in the time, and one is enough)."""
    import torch

    x = torch.randn(batch, 3, size, size)
    with torch.inference_mode():
        t0 = time.process_time()
        model.get_image_features(pixel_values=x)
        first = time.process_time() - t0
        if first > seconds:
            return batch / first
        n, t0 = 0, time.process_time()
        while n == 0 or time.process_time() - t0 < seconds:
            model.get_image_features(pixel_values=x)
            n += batch
        return n / (time.process_time() - t0)


def time_text(model, spec: dict, repeats: int = 3) -> float:
    """CPU milliseconds for one text query (CLIP: a 10-token prompt; SigLIP: padded to its 64 tokens)."""
    import torch

    length = spec["context"] if spec["kind"] == "siglip" else 10
    ids = torch.randint(0, spec["vocab"] - 2, (1, length))
    if spec["kind"] == "clip":
        ids[0, -1] = spec["vocab"] - 1
    with torch.inference_mode():
        model.get_text_features(input_ids=ids)
        t0 = time.process_time()
        for _ in range(repeats):
            model.get_text_features(input_ids=ids)
    return (time.process_time() - t0) / repeats * 1000


def measure(key: str, archs: dict, batch: int, seconds: float) -> dict:
    """The architecture's images/s, and the baseline's timed just before and just after it."""
    base = build(archs[BASELINE])
    size0 = archs[BASELINE]["image_size"]
    spec = archs[key]
    t0 = time.perf_counter()
    model = build(spec)
    built = time.perf_counter() - t0
    params = sum(p.numel() for p in model.parameters())
    before = time_images(base, size0, batch, seconds)
    ips = time_images(model, spec["image_size"], batch, seconds)
    after = time_images(base, size0, batch, seconds)
    base_ips = (before + after) / 2
    return {"arch": key, "params_m": round(params / 1e6, 1), "images_per_cpu_s": round(ips, 3),
            "baseline_images_per_cpu_s": [round(before, 3), round(after, 3)], "relative": round(ips / base_ips, 3),
            "text_ms": round(time_text(model, spec), 1), "build_s": round(built, 1)}


def machine() -> str:
    import torch

    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")),
               platform.processor() or "unknown CPU")
    return f"{cpu} ({os.cpu_count()} cores, shared), torch {torch.__version__}"


def write(results: list[dict]) -> None:
    import torch

    with open(CATALOG, encoding="utf-8") as f:
        doc = json.load(f)
    speed = doc.get("speed") or {"archs": {}}
    speed["archs"].update({r["arch"]: {k: v for k, v in r.items() if k != "arch"} for r in results})
    speed.update(machine=machine(), measured=dt.date.today().isoformat(), baseline=BASELINE,
                 method="images per CPU-second of get_image_features at batch %d on %d thread(s), random "
                        "weights, fp32; relative to the baseline timed in the same process just before and "
                        "just after (their mean)" % (results[0]["batch"], torch.get_num_threads()))
    doc["speed"] = speed
    with open(CATALOG, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", nargs="*", default=[], help="architecture keys of catalog.json")
    ap.add_argument("--all", action="store_true", help="every architecture, each in its own process")
    ap.add_argument("--batch", type=int, default=1, help="images per forward (1: one photo at a time)")
    ap.add_argument("--seconds", type=float, default=3.0, help="time each side at least this long (CPU s)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: CPU time is compute alone, "
                    "no waiting threads)")
    ap.add_argument("--write", action="store_true", help="store the results in catalog.json")
    args = ap.parse_args()
    with open(CATALOG, encoding="utf-8") as f:
        archs = json.load(f)["archs"]
    import torch

    torch.set_num_threads(args.threads)
    if args.all:
        for key in archs:
            cmd = [sys.executable, __file__, "--arch", key, "--batch", str(args.batch),
                   "--seconds", str(args.seconds), "--threads", str(args.threads)] + (["--write"] if args.write else [])
            subprocess.run(cmd, check=True)
        return
    results = []
    for key in args.arch:
        r = measure(key, archs, args.batch, args.seconds)
        r["batch"] = args.batch
        print(json.dumps(r), flush=True)
        results.append(r)
    if args.write and results:
        write(results)


if __name__ == "__main__":
    main()
