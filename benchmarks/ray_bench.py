"""`clipseek embed`: the Ray Data engine vs the in-process engine on this machine, plus a sizing estimate.

Same process, same images (photo-like 1024x768 JPEGs), same model (full-size ViT-B/32 with random
weights, or the tiny test model with --model tiny), same shard size. Measures:
  - decode stage alone (read + hash + JPEG draft decode + preprocess), one thread: images/s per core
  - in-process engine (`--engine local`), model already loaded: images/s
  - Ray engine on a local Ray instance (num_cpus = this machine's cores), on n/4 and on n images:
    images/s for the whole job, and from the two sizes the fixed cost per job (actor start, model load
    in the actor) and the marginal images/s
Then prints an estimate of the GPU-hours, GPUs and CPU cores to embed 100M images in a given wall time.

    PYTHONPATH=src python benchmarks/ray_bench.py [--n 128] [--model vit-b32|tiny] [--hours 24]
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import tempfile

from _common import Timer, build_vit_b32
from embed_bench import write_jpegs

# Per-GPU throughput used for the estimate. No GPU is reachable from this machine, so it is not
# measured here: clip-retrieval's published benchmark (docs/distributed_clip_inference.md) measured
# 7000 images/s on one node of 8 A100s for ViT-B/32 and 2500 images/s for one A100 alone (the node
# was CPU-bound on resizing). 2500/s per A100 is the GPU-bound figure for the model benchmarked here.
GPU_IMAGES_PER_S = 2500.0
GPU_SOURCE = "clip-retrieval: 2500 images/s on one A100, ViT-B/32"


def build_tiny(out_dir: str) -> str:
    from clipseek.model.scratch import save_new_checkpoint

    if not os.path.exists(os.path.join(out_dir, "config.json")):
        save_new_checkpoint(out_dir, ["a", "photo", "of", "cat"], seed=0, image_size=32, patch_size=8,
                            width=32, text_width=32, projection_dim=32)
    return out_dir


def decode_rate(paths: list[str], cfg) -> float:
    from clipseek.embed.stages import load_record

    with Timer() as t:
        for p in paths:
            load_record(p, cfg)
    return len(paths) / t.s


def estimate(n_images: float, hours: float, gpu_rate: float, decode_per_core: float) -> str:
    gpu_hours = n_images / gpu_rate / 3600
    gpus = math.ceil(gpu_hours / hours)
    cores = math.ceil(n_images / decode_per_core / (hours * 3600))
    return (f"  {n_images / 1e6:.0f}M images at {gpu_rate:.0f} images/s per GPU ({GPU_SOURCE}):\n"
            f"    {gpu_hours:.1f} GPU-hours of encoding; in {hours:g} h of wall time: {gpus} GPU(s)"
            f" (e.g. --workers {gpus} --num-gpus-per-worker 1), plus ~20% for start-up, stragglers, retries\n"
            f"    decode at the {decode_per_core:.0f} images/s per core measured here (1024x768 JPEGs): "
            f"{cores} CPU cores for the decode tasks ({n_images / decode_per_core / 3600:.0f} core-hours),"
            f" i.e. {math.ceil(gpu_rate / decode_per_core)} cores per GPU to keep each GPU busy")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--model", default="vit-b32", choices=("vit-b32", "tiny"))
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--shard-size", type=int, default=64)
    ap.add_argument("--hours", type=float, default=24.0, help="wall time for the 100M-image estimate")
    ap.add_argument("--work-dir", default=os.path.join(tempfile.gettempdir(), "clipseek-bench"))
    args = ap.parse_args()

    import clipseek
    from clipseek import load_model
    from clipseek.embed.job import embed_job

    os.makedirs(os.path.join(args.work_dir, "jpegs"), exist_ok=True)
    ckpt = (build_vit_b32(os.path.join(args.work_dir, "vit-b32-random")) if args.model == "vit-b32"
            else build_tiny(os.path.join(args.work_dir, "tiny")))
    paths = write_jpegs(os.path.join(args.work_dir, "jpegs"), args.n)
    src = os.path.join(args.work_dir, "ray-bench-list.txt")
    with open(src, "w") as f:
        f.write("\n".join(paths) + "\n")
    cores = os.cpu_count() or 1
    print(f"{args.n} JPEGs 1024x768, model {args.model}, batch {args.batch_size}, shard size "
          f"{args.shard_size}, {cores} CPU cores, load average {os.getloadavg()[0]:.1f}")

    with Timer() as t_load:
        enc = load_model(ckpt, device="cpu")  # in this warm process; a fresh Ray actor also imports torch
    per_core = decode_rate(paths[:32], enc.preprocess_cfg)
    print(f"{'decode stage, 1 thread':34s} {per_core:7.1f} images/s per core")

    def out_dir(name):
        d = os.path.join(args.work_dir, name)
        shutil.rmtree(d, ignore_errors=True)
        return d

    opts = dict(shard_size=args.shard_size, batch_size=args.batch_size)
    embed_job(src, out_dir("warm"), enc, **{**opts, "shard_size": args.batch_size})  # warm-up, 1st shard
    with Timer() as t_local:
        s = embed_job(src, out_dir("local"), enc, workers=cores, **opts)
    assert s.embedded == args.n
    local_rate = args.n / t_local.s
    print(f"{'in-process (--engine local)':34s} {local_rate:7.1f} images/s  ({t_local.s:.1f} s; "
          f"model load {t_load.s:.1f} s not included)")

    import ray

    old = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [os.path.dirname(os.path.dirname(clipseek.__file__)), old]))
    with Timer() as t_init:
        ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False,
                 object_store_memory=512 * 2**20)
    times = {}
    try:
        for n in (args.batch_size, args.n // 4, args.n):  # a warm-up run, then two sizes: fixed cost
            with open(src, "w") as f:
                f.write("\n".join(paths[:n]) + "\n")
            with Timer() as t_ray:
                s = embed_job(src, out_dir(f"ray{n}"), engine="ray", model=ckpt, device="cpu",
                              ray_options={"workers": 1}, **opts)
            assert s.embedded == n
            times[n] = t_ray.s
    finally:
        ray.shutdown()
    # (intercept) and per-image rate (slope)
    small, t_small, t_big = args.n // 4, times[args.n // 4], times[args.n]
    marginal = (args.n - small) / (t_big - t_small) if t_big > t_small else float("nan")
    fixed = t_small - small / marginal
    ray_rate = args.n / t_big
    print(f"{'Ray (--engine ray), 1 actor':34s} {ray_rate:7.1f} images/s  ({t_big:.1f} s for {args.n} images, "
          f"{t_small:.1f} s for {small}, warm-up {times[args.batch_size]:.1f} s; "
          f"ray.init {t_init.s:.1f} s not included)")
    print(f"{'Ray, marginal (per extra image)':34s} {marginal:7.1f} images/s  (x{marginal / local_rate:.2f} of "
          f"in-process); fixed cost per job ~{fixed:.1f} s (actor start, model load in the actor, planning)")
    print(f"Ray overhead on this machine: x{local_rate / ray_rate:.2f} slower end to end for {args.n} images. "
          "Decode tasks, the actor and the driver share the same cores, and pixel batches go through the "
          "object store; Ray pays off when there are more cores and GPUs than one process can use.")
    cpu_hours = 100e6 / local_rate / 3600
    print(f"\nOn CPUs like this machine's, in-process at {local_rate:.1f} images/s: 100M images = "
          f"{cpu_hours:,.0f} machine-hours ({cores} cores each)")
    print("Estimate for GPUs (the per-GPU rate is not measured: no GPU on this machine):")
    for n_images, hours in ((100e6, args.hours), (100e6, 1.0)):
        print(estimate(n_images, hours, GPU_IMAGES_PER_S, per_core))


if __name__ == "__main__":
    main()
