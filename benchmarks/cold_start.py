"""Cold start: `clipseek search` and `clipseek classify` as new processes, ONNX and torch side by side.

Full-size ViT-B/32 (random weights, `_common.build_vit_b32`), fp32. The gallery has 1,000 rows whose
files exist (small JPEGs) and whose vectors are random unit vectors stored under the model's real
fingerprint: what a search costs does not depend on where the stored vectors came from, and building
them with the model would take minutes. Classify: 3 JPEGs (1024x768) against 10 labels.

Each command runs `--repeat` times as a new process (`python -m clipseek.cli ...`), the backends
interleaved so both see the same machine load; the median wall time is reported, and the ratio
torch / onnx. The ONNX export is made once beforehand (its time is reported as "first use").

    PYTHONPATH=src python benchmarks/cold_start.py [--repeat 5] [--backends onnx,torch]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from _common import QUERIES, build_vit_b32

LABELS = "cat,dog,beach,sunset,mountains,car,city,fruit,forest,boat"


def build_gallery(ckpt: str, folder: str, n: int) -> str:
    """A gallery DB of `n` rows (real small files, random unit vectors, the model's fingerprint)."""
    from PIL import Image

    from clipseek.gallery.store import Store, file_hash
    from clipseek.model.loader import load_model

    db = os.path.join(folder, f"gallery-{n}.db")
    if os.path.exists(db):
        return db
    enc = load_model(ckpt, device="cpu", backend="torch")
    imgs = os.path.join(folder, "gallery")
    os.makedirs(imgs, exist_ok=True)
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((n, enc.dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    rows = []
    for i in range(n):
        p = os.path.join(imgs, f"{i:05d}.jpg")
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(p)
        st = os.stat(p)
        rows.append((p, st.st_size, st.st_mtime_ns, file_hash(p), 64, 48, vecs[i]))
    tmp = db + ".tmp"
    with Store.open(tmp, create=True) as store:
        store.bind_model(enc.fingerprint, enc.dim)
        with store.transaction():
            store.insert_files(rows)
    os.replace(tmp, db)
    return db


def run(args: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds, CPU seconds user+system) of one new process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{r.stderr}")
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--n", type=int, default=1000, help="gallery rows")
    ap.add_argument("--backends", default="onnx,torch")
    ap.add_argument("--work-dir", default=os.path.join(tempfile.gettempdir(), "clipseek-bench"))
    args = ap.parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    ckpt = build_vit_b32(os.path.join(args.work_dir, "vit-b32-random"))
    from embed_bench import write_jpegs

    os.makedirs(os.path.join(args.work_dir, "jpegs"), exist_ok=True)
    jpegs = write_jpegs(os.path.join(args.work_dir, "jpegs"), 3)
    db = build_gallery(ckpt, args.work_dir, args.n)
    env = dict(os.environ, CLIPSEEK_CACHE=os.path.join(args.work_dir, "cache"), HF_HUB_OFFLINE="1",
               PYTHONWARNINGS="ignore")
    backends = args.backends.split(",")
    if "onnx" in backends:
        t, _ = run(["-m", "clipseek.cli", "classify", jpegs[0], "-l", "a,b", "--model", ckpt, "--backend", "onnx"],
                   env)
        print(f"ONNX first use (export if not cached, then one classify): {t:.1f} s")
    commands = {
        "python -c pass (floor)": ["-c", "pass"],
        f"search, {args.n:,}-image gallery": ["-m", "clipseek.cli", "search", QUERIES[1], "--db", db, "-f", "paths"],
        "classify 3 images x 10 labels": ["-m", "clipseek.cli", "classify", *jpegs, "-l", LABELS, "--model", ckpt,
                                          "-f", "csv"],
    }
    times: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for _ in range(args.repeat):
        for what, cmd in commands.items():
            for backend in (backends if "clipseek.cli" in cmd else ["-"]):
                extra = ["--backend", backend] if backend != "-" else []
                times.setdefault((what, backend), []).append(run(cmd + extra, env))
    print(f"ViT-B/32 fp32, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, {args.repeat} runs each: "
          "median wall seconds (min-max), median CPU seconds")
    for what in commands:
        cells = {b: ts for (w, b), ts in times.items() if w == what}
        med = {b: statistics.median(t[0] for t in ts) for b, ts in cells.items()}
        line = "  ".join(f"{b}: {med[b]:5.2f} s ({min(t[0] for t in ts):.2f}-{max(t[0] for t in ts):.2f}, "
                         f"cpu {statistics.median(t[1] for t in ts):.2f})" for b, ts in cells.items())
        ratio = f"  torch/onnx x{med['torch'] / med['onnx']:.1f}" if {"torch", "onnx"} <= set(med) else ""
        print(f"{what:31s} {line}{ratio}")

if __name__ == "__main__":
    main()
