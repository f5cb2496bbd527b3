"""Videos: what sampling moments costs per minute of video, and the shot-change threshold's margins.

Speed (default): clips are generated in a temporary folder: a base of a few seconds is encoded
(photo-like pictures panning, sensor-like noise, a cut every 5 s) and repeated by copying its
packets (`data.synthetic_video.repeat_video`) to `--seconds`; decoding and seeking such a file cost
what a real one does. Clips: 1080p30 H.264 at 12 Mbit/s with a keyframe every second (a phone's
spacing) and with x264's default spacing (250 frames: every frame between keyframes then has to be
decoded to keep a moment every 2 s), and, when PyAV's FFmpeg has libx265, 4K30 HEVC at 30 Mbit/s.
Per minute of video it reports: the streaming content hash (blake2b-128, 1 MiB reads), probing and
sampling (wall and CPU seconds, frames decoded, moments), and embedding the moments with the bundled
model and a random-weight ViT-B/32 (`_common.build_vit_b32`) on the ONNX backend; then the total for
a 10-minute video with ViT-B/32 (the issue's target: at most 60 s).

    PYTHONPATH=src python benchmarks/video_bench.py [--seconds 60] [--clips h264-gop30,h264-gop250,hevc-4k] [--no-vit]
    PYTHONPATH=src python benchmarks/video_bench.py --shots      # shot distances: cuts vs inside a shot
    PYTHONPATH=src python benchmarks/video_bench.py --gallery    # re-index unchanged videos vs photos,
                                                                 # search p50 with moments (video_gallery_bench.py)
"""

from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np
from _common import Timer, build_vit_b32, load_avg

CLIPS = {  # name: (width, height, encoder, options, gop, bit rate, base seconds)
    "h264-gop30": (1920, 1080, "libx264", {"preset": "ultrafast"}, 30, 12_000_000, 10),
    "h264-gop250": (1920, 1080, "libx264", {"preset": "ultrafast"}, 250, 12_000_000, 10),
    "hevc-4k": (3840, 2160, "libx265", {"preset": "ultrafast", "x265-params": "log-level=error"}, 30,
                30_000_000, 1),
}


def panning_frames(w: int, h: int, seconds: float, fps: int = 30, cut_every_s: float = 5.0,
                   speed: int = 4, noise: int = 12, gain=None):
    """Photo-like pictures panning `speed` px a frame, a new one every `cut_every_s`, plus noise."""
    from clipseek.data.synthetic import photo_like

    rng = np.random.default_rng(0)
    bank = [rng.integers(-noise, noise + 1, (h, w, 3), dtype=np.int16) for _ in range(5)] if noise else None
    per_shot = round(cut_every_s * fps)
    for i in range(round(seconds * fps)):
        if i % per_shot == 0:
            base = np.asarray(photo_like(i // per_shot + 1, (w + per_shot * speed, h)), dtype=np.int16)
        k = i % per_shot
        arr = base[:, k * speed:k * speed + w]
        if gain is not None:
            arr = (arr * gain(i)).astype(np.int16)
        if bank:
            arr = arr + bank[i % len(bank)]
        yield np.clip(arr, 0, 255).astype(np.uint8)


def make_clip(name: str, folder: str, seconds: float) -> str:
    from clipseek.data.synthetic_video import repeat_video, write_video

    w, h, codec, options, gop, rate, base_s = CLIPS[name]
    base = os.path.join(folder, f"{name}-base.mp4")
    with Timer() as t:
        write_video(base, panning_frames(w, h, base_s, speed=max(1, w // 480)), 30, codec, options=options,
                    gop=gop, bit_rate=rate)
    out = repeat_video(base, os.path.join(folder, f"{name}.mp4"), max(1, round(seconds / base_s)))
    print(f"  generated {name}: {base_s} s encoded in {t.s:.0f} s, repeated to {seconds:.0f} s")
    return out


def measure(path: str, encoders: dict) -> dict:
    from clipseek.core.files import hash_regular
    from clipseek.core.video import probe, sample_moments

    with Timer() as th:
        hash_regular(path)  # the file was just written: from the page cache (CPU-bound)
    with Timer() as tp:
        probe(path)
    with Timer() as ts:
        sampling = sample_moments(path)
        moments = list(sampling)
    minutes = sampling.info.duration_s / 60
    row = {"minutes": minutes, "mb": os.path.getsize(path) / 2**20, "hash": th.s, "hash_cpu": th.cpu,
           "probe": tp.s, "sample": ts.s, "sample_cpu": ts.cpu, "decoded": sampling.decoded,
           "moments": len(moments)}
    for label, enc in encoders.items():
        images = [m.image for m in moments]
        with Timer() as te:
            enc.encode_images(images)
        row[label], row[label + "_cpu"] = te.s, te.cpu
    return row


def speed(args) -> None:
    from clipseek.data.synthetic_video import has_encoder
    from clipseek.model.loader import load_model

    encoders = {"demo": load_model("clipseek-demo", backend="onnx")}
    if not args.no_vit:
        ckpt = build_vit_b32(os.path.join(args.work_dir, "vit-b32-random"))
        with Timer() as t:
            encoders["vit-b32"] = load_model(ckpt, backend="onnx")
        print(f"  ViT-B/32 loaded (ONNX; exported if not cached) in {t.s:.0f} s")
    rows = {}
    with tempfile.TemporaryDirectory(dir=args.work_dir) as tmp:
        for name in args.clips.split(","):
            if not has_encoder(CLIPS[name][2]):
                print(f"  {name}: no {CLIPS[name][2]} encoder in PyAV's FFmpeg, skipped")
                continue
            rows[name] = measure(make_clip(name, tmp, args.seconds), encoders)
    print(f"\n{os.cpu_count()} CPUs, load average {load_avg()}; per minute of video (wall seconds "
          "unless noted)\n")
    cols = ["MB", "hash", "probe (once)", "sample", "frames decoded", "moments", "embed demo", "embed ViT-B/32",
            "10-min video, ViT-B/32"]
    print("| clip | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols))
    for name, r in rows.items():
        def per(k, r=r):
            return r[k] / r["minutes"]

        def both(k, per=per):
            return f"{per(k):.2f} ({per(k + '_cpu'):.2f})"
        wall = 10 * (per("hash") + per("sample") + per("vit-b32")) + r["probe"] if "vit-b32" in r else float("nan")
        cpu = 10 * (per("hash_cpu") + per("sample_cpu") + per("vit-b32_cpu")) if "vit-b32" in r else float("nan")
        print(f"| {name} | {per('mb'):.0f} | {both('hash')} | {r['probe']:.2f} | {both('sample')} | "
              f"{per('decoded'):.0f} | {per('moments'):.0f} | {both('demo')} | "
              f"{both('vit-b32') if 'vit-b32' in r else '-'} | {wall:.0f} s ({cpu:.0f} s CPU) |")
    print("\nCells: wall seconds (CPU seconds, all threads) per minute of video; the last column: hash + "
          "probe + sample + embed for 10 minutes.")


def shots(args) -> None:
    """Distances of candidates 0.25 s apart: at the cuts and inside the shots, per kind of clip."""
    from clipseek.core.video.sample import MOMENT_SIZE, frame_image
    from clipseek.core.video.shots import SHOT_THRESHOLD, shot_distance, signature
    from clipseek.data.synthetic_video import H264, shapes_clip, write_video

    import av

    def distances(path, cut_times):
        sigs = []
        with av.open(path) as c:
            for f in c.decode(c.streams.video[0]):
                if not sigs or f.time - sigs[-1][0] >= 0.25 - 1e-6:
                    sigs.append((f.time, signature(frame_image(f, MOMENT_SIZE))))
        pairs = [(b[0], shot_distance(a[1], b[1])) for a, b in zip(sigs, sigs[1:])]
        cut = [d for t, d in pairs if any(c <= t < c + 0.26 for c in cut_times)]
        return cut, [d for t, d in pairs if not any(c <= t < c + 0.26 for c in cut_times)]

    kinds = {
        "shapes, cuts at 2 and 4 s": (lambda p: shapes_clip(p, H264), [2.0, 4.0]),
        "photo-like, slow pan": (lambda p: write_video(p, panning_frames(640, 360, 12, speed=1, noise=3),
                                                       options={"preset": "ultrafast"}), [5.0, 10.0]),
        "photo-like, fast pan (a width in 2.7 s)": (lambda p: write_video(
            p, panning_frames(640, 360, 12, cut_every_s=3, speed=8, noise=3), options={"preset": "ultrafast"}),
            [3.0, 6.0, 9.0]),
        "fast pan, exposure +-30%": (lambda p: write_video(
            p, panning_frames(640, 360, 12, speed=8, noise=3, gain=lambda i: 1 + 0.3 * np.sin(i / 20)),
            options={"preset": "ultrafast"}), [5.0, 10.0]),
    }
    print(f"SHOT_THRESHOLD = {SHOT_THRESHOLD}\n\n| clip | cuts: min distance | inside shots: max distance |"
          "\n|---|---|---|")
    with tempfile.TemporaryDirectory(dir=args.work_dir) as tmp:
        for k, (name, (make, cut_times)) in enumerate(kinds.items()):
            cut, inside = distances(make(os.path.join(tmp, f"{k}.mp4")), cut_times)
            print(f"| {name} | {min(cut):.3f} | {max(inside):.3f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 allow_abbrev=False)
    ap.add_argument("--seconds", type=float, default=60, help="length of each clip")
    ap.add_argument("--clips", default="h264-gop30,h264-gop250,hevc-4k")
    ap.add_argument("--no-vit", action="store_true", help="skip the ViT-B/32 (its build and ONNX export)")
    ap.add_argument("--shots", action="store_true", help="measure the shot-change distances instead")
    ap.add_argument("--gallery", action="store_true", help="run video_gallery_bench.py (its own options)")
    ap.add_argument("--work-dir", default=os.path.join(tempfile.gettempdir(), "clipseek-bench"))
    args, rest = ap.parse_known_args()
    if args.gallery:
        import sys

        import video_gallery_bench

        sys.argv = [sys.argv[0], *rest]
        return video_gallery_bench.main()
    os.makedirs(args.work_dir, exist_ok=True)
    os.environ.setdefault("CLIPSEEK_CACHE", os.path.join(args.work_dir, "cache"))
    shots(args) if args.shots else speed(args)


if __name__ == "__main__":
    main()
