"""HTTP load on `clipseek serve`: concurrent clients on loopback against GET /api/search.

Builds a gallery of generated JPEGs, starts the real command (`python -m clipseek serve`) in its own
process on 127.0.0.1 and a free port, then:
  1. one client, sequential requests (the baseline: the cost of one query end to end);
  2. --clients (16) concurrent keep-alive clients for --requests total or --seconds, whichever is
     first, each sending text queries in turn; meanwhile a probe hits GET /api/health every 50 ms
     to show that the event loop stays free while the model works.
  3. fairness: one POST /api/classify with --classify-prompts (20,000: 1,000 labels x 20 templates)
     while 4 clients search; the searches' latency during it shows whether the model thread lets
     them run between the slices of the big request (target: p99 <= 500 ms).
Reports requests/s, p50/p90/p99/max latency and the error count (any non-200 or failed request).
Traffic goes only to 127.0.0.1.

    python benchmarks/serve_bench.py                      # ViT-B/32 (random weights), 200 images
    python benchmarks/serve_bench.py --model tiny --images 1000 --requests 4000
    python benchmarks/serve_bench.py --model tiny --only-fairness [--src OTHER/src]   # phase 3 alone
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

import numpy as np
from _common import QUERIES, QUERY_WORDS, build_vit_b32

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def build_tiny(out_dir: str) -> str:
    if os.path.exists(os.path.join(out_dir, "config.json")):
        return out_dir
    from clipseek.model.scratch import save_new_checkpoint

    return save_new_checkpoint(out_dir, QUERY_WORDS, seed=0, image_size=32, patch_size=8, width=32,
                               text_width=32, projection_dim=32)


def build_gallery(work: str, model_dir: str, n: int) -> str:
    from PIL import Image

    import clipseek

    folder = os.path.join(work, f"photos-{n}")
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        p = os.path.join(folder, f"img{i:05d}.jpg")
        if not os.path.exists(p):
            small = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
            Image.fromarray(small).resize((320, 240), Image.BICUBIC).save(p, quality=85)
    db = os.path.join(work, f"gallery-{os.path.basename(model_dir)}-{n}.db")
    with clipseek.Gallery(db, model=model_dir, device="cpu") as g:
        s = g.index([folder])
    print(f"gallery: {s.total} images in {db}")
    return db


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(conn: http.client.HTTPConnection, path: str) -> int:
    conn.request("GET", path)
    r = conn.getresponse()
    r.read()
    return r.status


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited with {proc.returncode}")
        try:
            if get(http.client.HTTPConnection("127.0.0.1", port, timeout=2), "/api/health") == 200:
                return
        except OSError:
            time.sleep(0.2)
    sys.exit("server did not start")


def run_clients(port: int, clients: int, total: int, seconds: float, k: int) -> dict:
    lat: list[float] = []
    errors = [0]
    lock = threading.Lock()
    counter = iter(range(total))
    stop_at = time.perf_counter() + seconds

    def client(cid: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine: list[float] = []
        while time.perf_counter() < stop_at:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            q = urllib.parse.quote(QUERIES[(i + cid) % len(QUERIES)])
            t0 = time.perf_counter()
            try:
                ok = get(conn, f"/api/search?q={q}&k={k}") == 200
            except OSError:
                ok = False
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            mine.append(time.perf_counter() - t0)
            if not ok:
                with lock:
                    errors[0] += 1
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ms = np.array(lat) * 1000
    return {"clients": clients, "requests": len(lat), "errors": errors[0], "seconds": round(wall, 2),
            "rps": round(len(lat) / wall, 1), "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p90_ms": round(float(np.percentile(ms, 90)), 1), "p99_ms": round(float(np.percentile(ms, 99)), 1),
            "max_ms": round(float(ms.max()), 1)}


def classify_body(n_prompts: int) -> tuple[bytes, str]:
    """A multipart classify request of n_prompts prompts: labels x 20 templates, and a small PNG."""
    import io

    from PIL import Image

    n_templates = 20
    labels = [f"thing number {i}" for i in range(max(1, n_prompts // n_templates))]
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buf, "PNG")
    boundary = "clipseekbench"
    fields = [("labels", ",".join(labels))] + [("templates", f"a photo of a {{}}, take {j}")
                                                for j in range(n_templates)]
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n'
                 f"Content-Type: image/png\r\n\r\n".encode() + buf.getvalue() + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def run_fairness(port: int, n_prompts: int, clients: int, k: int) -> dict:
    """Search latency while one classify request of n_prompts prompts runs."""
    body, ctype = classify_body(n_prompts)
    out: dict = {}

    def classify() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        t0 = time.perf_counter()
        conn.request("POST", "/api/classify", body=body, headers={"Content-Type": ctype})
        r = conn.getresponse()
        r.read()
        out.update(classify_status=r.status, classify_s=round(time.perf_counter() - t0, 2))

    worker = threading.Thread(target=classify)
    worker.start()
    time.sleep(0.2)  # the classify request is on the model thread now
    lat: list[float] = []
    lock = threading.Lock()

    def client(cid: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        while worker.is_alive():
            q = urllib.parse.quote(QUERIES[cid % len(QUERIES)])
            t0 = time.perf_counter()
            ok = get(conn, f"/api/search?q={q}&k={k}") == 200
            with lock:
                lat.append((time.perf_counter() - t0) * 1000 if ok else float("inf"))

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads + [worker]:
        t.join()
    ms = np.array(lat) if lat else np.array([float("nan")])
    return {**out, "prompts": n_prompts, "searches": len(lat), "errors": int(np.isinf(ms).sum()),
            "search_p50_ms": round(float(np.percentile(ms, 50)), 1),
            "search_p99_ms": round(float(np.percentile(ms, 99)), 1), "search_max_ms": round(float(ms.max()), 1)}


def probe_health(port: int, stop: threading.Event, out: list[float]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    while not stop.is_set():
        t0 = time.perf_counter()
        get(conn, "/api/health")
        out.append((time.perf_counter() - t0) * 1000)
        stop.wait(0.05)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=("vit-b32", "tiny"), default="vit-b32")
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=2000, help="total requests of the concurrent phase")
    ap.add_argument("--seconds", type=float, default=60, help="time bound of the concurrent phase")
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--work-dir", default=os.path.join(tempfile.gettempdir(), "clipseek-bench"))
    ap.add_argument("--classify-prompts", type=int, default=20_000,
                    help="prompts of the fairness phase's classify request (0: skip the phase)")
    ap.add_argument("--only-fairness", action="store_true", help="run the fairness phase alone")
    ap.add_argument("--src", default=SRC, help="the clipseek source tree the server runs (a baseline)")
    args = ap.parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    model_dir = (build_vit_b32(os.path.join(args.work_dir, "vit-b32-random")) if args.model == "vit-b32"
                 else build_tiny(os.path.join(args.work_dir, "tiny-random")))
    db = build_gallery(args.work_dir, model_dir, args.images)
    port = free_port()
    env = dict(os.environ, PYTHONPATH=args.src + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "clipseek", "serve", "--db", db, "--host", "127.0.0.1",
                             "--port", str(port), "--device", "cpu"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(port, proc)
        print(f"server: pid {proc.pid} on 127.0.0.1:{port}, model {args.model}, cpus {os.cpu_count()}")
        run_clients(port, 1, 20, 30, args.k)  # warm-up
        if args.only_fairness:
            print("fairness:", json.dumps(run_fairness(port, args.classify_prompts, 4, args.k)))
            return
        base = run_clients(port, 1, 100, args.seconds, args.k)
        print("1 client (sequential):", json.dumps(base))
        stop, health = threading.Event(), []
        probe = threading.Thread(target=probe_health, args=(port, stop, health))
        probe.start()
        load = run_clients(port, args.clients, args.requests, args.seconds, args.k)
        stop.set()
        probe.join()
        print(f"{args.clients} clients:", json.dumps(load))
        h = np.array(health)
        print(f"GET /api/health during the load: {len(h)} probes, p50 {np.percentile(h, 50):.1f} ms, "
              f"p99 {np.percentile(h, 99):.1f} ms, max {h.max():.1f} ms")
        if args.classify_prompts:
            print("fairness:", json.dumps(run_fairness(port, args.classify_prompts, 4, args.k)))
        if load["errors"] or base["errors"]:
            sys.exit(f"FAILED: {load['errors'] + base['errors']} errors")
    finally:
        proc.terminate()
        proc.wait(30)


if __name__ == "__main__":
    main()
