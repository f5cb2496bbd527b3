"""Cold start: `clipseek search` and `clipseek classify` as new processes, ONNX and torch side by side.

Full-size ViT-B/32 (random weights, `_common.build_vit_b32`), fp32. The gallery has 1,000 rows whose
files exist (small JPEGs) and whose vectors are random unit vectors stored under the model's real
fingerprint: what a search costs does not depend on where the stored vectors came from, and building
them with the model would take minutes. Classify: 3 JPEGs (1024x768) against 10 labels.

Each command runs `--repeat` times as a new process (`python -m clipseek.cli ...`), the backends
interleaved so both see the same machine load; the median wall time is reported, and the ratio
torch / onnx. The ONNX export is made once beforehand (its time is reported as "first use").

`--part export`: the one-time export itself, `clipseek export onnx VIT-B/32 OUT` as a new process:
wall and CPU seconds and that process' peak RSS (its own `ru_maxrss`, from `os.wait4`). With
`--baseline-src OTHER/src` the same command runs from another checkout too (e.g. the commit before a
change), alternating, for a before/after on the same machine in the same run.
`--part reindex`: `clipseek index` of an unchanged folder with `--backend torch`, the gallery's own
model (loaded only when something needs embedding) against `--model` given (always loaded).

    PYTHONPATH=src python benchmarks/cold_start.py [--repeat 5] [--backends onnx,torch] [--part all|export|reindex]
                                                   [--baseline-src OTHER/src]
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


def measured(args: list[str], env: dict) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS MiB) of one new process, its own resource usage (`os.wait4`)."""
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{err}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def export_part(ckpt: str, work: str, env: dict, repeat: int, baseline: str | None) -> None:
    """The one-time ONNX export of ViT-B/32 as a new process, this checkout (and a baseline's)."""
    import shutil

    sources = {"this": os.environ.get("PYTHONPATH", "")}
    if baseline:
        sources = {"baseline": baseline, **sources}
    runs: dict[str, list[tuple[float, float, float]]] = {k: [] for k in sources}
    for _ in range(repeat):
        for label, src in sources.items():
            out = os.path.join(work, f"export-{label}")
            shutil.rmtree(out, ignore_errors=True)
            runs[label].append(measured(["-m", "clipseek.cli", "export", "onnx", ckpt, out],
                                        dict(env, PYTHONPATH=src, CLIPSEEK_CACHE=os.path.join(work, f"cache-{label}"))))
    print(f"ONNX export of ViT-B/32 (clipseek export onnx, a new process), {os.cpu_count()} CPUs, load "
          f"{os.getloadavg()[0]:.1f}, {repeat} run(s) each: median wall s, CPU s, peak RSS MiB")
    for label, r in runs.items():
        print(f"  {label:9s} ({sources[label] or 'installed'}): wall {statistics.median(x[0] for x in r):5.1f} s, "
              f"cpu {statistics.median(x[1] for x in r):5.1f} s, peak {statistics.median(x[2] for x in r):6.0f} MiB")


def reindex_part(ckpt: str, work: str, env: dict, repeat: int) -> None:
    """An unchanged re-index with --backend torch: the DB's own model (lazy) against --model (loaded)."""
    from embed_bench import write_jpegs

    folder = os.path.join(work, "reindex")
    os.makedirs(folder, exist_ok=True)
    write_jpegs(folder, 20)
    db = os.path.join(work, "reindex.db")
    base = ["-m", "clipseek.cli", "index", folder, "--db", db, "--backend", "torch"]
    measured(base + ["--model", ckpt], env)  # the first index embeds the 20 files
    cases = {"DB's own model (loaded only if needed)": base, "--model given (always loaded)": base + ["--model", ckpt]}
    runs: dict[str, list[tuple[float, float, float]]] = {k: [] for k in cases}
    for _ in range(repeat):
        for what, cmd in cases.items():
            runs[what].append(measured(cmd, env))
    print(f"unchanged re-index of 20 files, --backend torch, {repeat} run(s) each: median wall s, CPU s, peak RSS")
    for what, r in runs.items():
        print(f"  {what:40s} wall {statistics.median(x[0] for x in r):5.2f} s, cpu "
              f"{statistics.median(x[1] for x in r):5.2f} s, peak {statistics.median(x[2] for x in r):5.0f} MiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--n", type=int, default=1000, help="gallery rows")
    ap.add_argument("--backends", default="onnx,torch")
    ap.add_argument("--part", default="all", choices=["all", "commands", "export", "reindex"])
    ap.add_argument("--baseline-src", default=None, help="another checkout's src/ for --part export")
    ap.add_argument("--work-dir", default=os.path.join(tempfile.gettempdir(), "clipseek-bench"))
    args = ap.parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    ckpt = build_vit_b32(os.path.join(args.work_dir, "vit-b32-random"))
    env0 = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONWARNINGS="ignore")
    if args.part in ("all", "export"):
        export_part(ckpt, args.work_dir, env0, args.repeat if args.part == "export" else 1, args.baseline_src)
    if args.part in ("all", "reindex"):
        reindex_part(ckpt, args.work_dir, dict(env0, CLIPSEEK_CACHE=os.path.join(args.work_dir, "cache")),
                     args.repeat if args.part == "reindex" else 1)
    if args.part not in ("all", "commands"):
        return
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
