"""Files -> vectors: read/decode/preprocess in a thread pool, encode batches in the caller's thread.

Stages are small functions (read -> decode+preprocess -> encode), driven by `embed_paths` here and by
the runners of `embed_job` (in-process) and `embed.ray_runner` (Ray Data). Failures per file become
`Skipped` records and never break the pairing of paths and vectors.
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence

import numpy as np

from clipseek.core.files import read_regular
from clipseek.core.images import DEFAULT_LIMITS, ImageError, ImageLimits, full_size, open_image
from clipseek.core.preprocess import PreprocessCfg, preprocess
from clipseek.core.vectors import NOT_FINITE, finite_rows
from clipseek.embed.shards import ROW_FIELDS
from clipseek.errors import Skipped

if TYPE_CHECKING:
    from clipseek.model.base import Encoder


@dataclass
class Blob:
    """One file's bytes, read once: hashed (same hash as `store.file_hash`) and then decoded."""

    path: str
    data: bytes
    size: int
    mtime_ns: int
    hash: str


def is_uri(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def read_blob(path: str, limits: ImageLimits = DEFAULT_LIMITS) -> Blob | Skipped:
    """Read stage: a local path (a regular file only, at most `limits.max_bytes`: `core.files`), or a
    URI that pyarrow's filesystems reach (s3://, gs://, hdfs://...)."""
    try:
        if is_uri(path):
            data, mtime_ns = _read_uri(path, limits.max_bytes), 0
        else:
            local = path[len("file://"):] if path.startswith("file://") else path
            data, st = read_regular(local, limits.max_bytes)
            mtime_ns = st.st_mtime_ns
    except ImageError as e:
        return Skipped(path, e.reason)
    except FileNotFoundError:
        return Skipped(path, "file not found")
    except (OSError, ValueError) as e:
        return Skipped(path, f"cannot read: {getattr(e, 'strerror', None) or e}")
    return Blob(path, data, len(data), mtime_ns, hashlib.blake2b(data, digest_size=16).hexdigest())


def _read_uri(path: str, max_bytes: int) -> bytes:
    from pyarrow import fs

    filesystem, inner = fs.FileSystem.from_uri(path)
    size = filesystem.get_file_info(inner).size
    if size is not None and size > max_bytes:
        raise ImageError(path, f"file too large: {size / (1 << 20):,.1f} MB (the limit is "
                               f"{max_bytes / (1 << 20):,.0f} MB, --max-file-mb)")
    with filesystem.open_input_file(inner) as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ImageError(path, f"file too large: over the limit of {max_bytes / (1 << 20):,.0f} MB")
    return data


def decode_blob(blob: Blob, cfg: PreprocessCfg, limits: ImageLimits = DEFAULT_LIMITS,
                prep: Callable | None = None):
    """Decode + preprocess stage from the bytes read (no model needed): (pixels, (w, h)) or a Skipped
    record. `prep(image)` replaces `preprocess(image, cfg)` (an encoder's own preprocessing)."""
    try:
        img = open_image(blob.path, max_pixels=limits.max_pixels, draft_size=cfg.input_size, data=blob.data)
        return (prep(img) if prep is not None else preprocess(img, cfg)), full_size(img)
    except ImageError as e:
        return Skipped(e.path, e.reason)
    except Exception as e:
        return Skipped(blob.path, f"cannot preprocess ({type(e).__name__}: {e})")


def ordered_map(fn: Callable, items: Iterable, workers: int, ahead: int) -> Iterator[tuple[object, object]]:
    """(item, fn(item)) in input order, computed by a thread pool at most `ahead` items in advance.

    When the consumer stops early (Ctrl-C, an error, the generator closed), the items not started are
    cancelled and nothing waits for the ones running: each is one bounded read and decode."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="clipseek-decode")
    pending: deque = deque()
    it = iter(items)
    _end = object()

    def fill() -> None:
        while len(pending) < ahead:
            x = next(it, _end)
            if x is _end:
                return
            pending.append((x, pool.submit(fn, x)))

    try:
        fill()
        while pending:
            x, fut = pending.popleft()
            res = fut.result()
            fill()
            yield x, res
    finally:
        for _, fut in pending:
            fut.cancel()
        pool.shutdown(wait=False, cancel_futures=True)


@dataclass
class EmbedBatch:
    paths: list[str]
    vectors: np.ndarray                    # (len(paths), D) unit float32
    skipped: list[Skipped] = field(default_factory=list)
    sizes: list[tuple[int, int]] = field(default_factory=list)  # (width, height) as decoded, EXIF-applied


def decode_for(encoder: Encoder, blob: Blob, limits: ImageLimits = DEFAULT_LIMITS):
    """Decode stage for an in-process encoder (its own preprocessing): (pixels, (w, h)) or Skipped."""
    return decode_blob(blob, encoder.preprocess_cfg, limits, encoder.preprocess)


def load_and_preprocess(path: str, encoder: Encoder, limits: ImageLimits = DEFAULT_LIMITS):
    """Read stage + decode stage for one file, read once: (pixels, (w, h)) or a Skipped record."""
    blob = read_blob(os.fsdecode(path), limits)
    return blob if isinstance(blob, Skipped) else decode_for(encoder, blob, limits)


def default_workers() -> int:
    return max(1, min(8, (os.cpu_count() or 2)))


def embed_paths(encoder: Encoder, paths: Iterable[str], batch_size: int = 32, workers: int | None = None,
                limits: ImageLimits = DEFAULT_LIMITS,
                on_progress: Callable[[int], None] | None = None) -> Iterator[EmbedBatch]:
    """Yield EmbedBatch objects in input order. Decoding of the next batches overlaps encoding.

    At most about two batches are decoded ahead of the encoder, so memory stays bounded however
    many files there are.
    """
    workers = workers or default_workers()
    loaded = ordered_map(lambda p: load_and_preprocess(p, encoder, limits), paths, workers,
                         ahead=2 * batch_size + workers)
    for batch in batched(loaded, batch_size):
        yield encode_batch(encoder, batch)
        if on_progress:
            on_progress(len(batch))


def batched(items: Iterable, n: int) -> Iterator[list]:
    batch: list = []
    for x in items:
        batch.append(x)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


def encode_batch(encoder: Encoder, batch: Sequence[tuple[str, object]]) -> EmbedBatch:
    """Encode stage: (path, (pixels, (w, h)) or Skipped) pairs -> one EmbedBatch, paths kept paired.
    A file whose vector is not finite is Skipped (core.vectors.NOT_FINITE), never returned."""
    good = [(p, r) for p, r in batch if not isinstance(r, Skipped)]
    skipped = [r for _, r in batch if isinstance(r, Skipped)]
    if not good:
        return EmbedBatch([], np.zeros((0, encoder.dim), np.float32), skipped, [])
    vecs = encoder.encode_pixels(np.stack([r[0] for _, r in good]))
    ok = finite_rows(vecs)
    skipped += [Skipped(p, NOT_FINITE) for (p, _), keep in zip(good, ok) if not keep]
    good = [g for g, keep in zip(good, ok) if keep]
    return EmbedBatch([p for p, _ in good], vecs[ok], skipped, [r[1] for _, r in good])


def embed_all(encoder: Encoder, paths: Iterable[str], **kwargs) -> EmbedBatch:
    """Embed everything and return one EmbedBatch (paths and vectors stay paired)."""
    out_paths, out_vecs, skipped, sizes = [], [], [], []
    for b in embed_paths(encoder, paths, **kwargs):
        out_paths += b.paths
        out_vecs.append(b.vectors)
        skipped += b.skipped
        sizes += b.sizes
    vecs = np.concatenate(out_vecs) if out_vecs else np.zeros((0, encoder.dim), np.float32)
    return EmbedBatch(out_paths, vecs, skipped, sizes)


# ---- stage 2: read + decode (CPU, no model) ----------------------------------------------------------
def load_record(path: str, cfg: PreprocessCfg, limits: ImageLimits = DEFAULT_LIMITS) -> dict:
    """One file -> a row: the ROW_FIELDS, `pixels` (None when it failed) and `error` ("" when fine)."""
    blob = read_blob(path, limits)
    row = {"path": path, "hash": "", "size": 0, "mtime_ns": 0, "width": 0, "height": 0,
           "pixels": None, "error": ""}
    if isinstance(blob, Skipped):
        row["error"] = blob.reason
        return row
    row.update(hash=blob.hash, size=blob.size, mtime_ns=blob.mtime_ns)
    out = decode_blob(blob, cfg, limits)
    if isinstance(out, Skipped):
        row["error"] = out.reason
    else:
        row["pixels"], (row["width"], row["height"]) = out
    return row


def stack_records(records: list[dict], pixel_shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Rows -> columns; failed files get zero pixels (they are not encoded)."""
    cols = {k: np.array([r[k] for r in records]) for k in (*ROW_FIELDS, "error")}
    cols["pixels"] = np.stack([r["pixels"] if r["pixels"] is not None else np.zeros(pixel_shape, np.float32)
                               for r in records]) if records else np.zeros((0, *pixel_shape), np.float32)
    return cols


def pixel_shape(cfg: PreprocessCfg) -> tuple[int, ...]:
    from PIL import Image

    from clipseek.core.preprocess import preprocess

    return tuple(preprocess(Image.new("RGB", (64, 64)), cfg).shape)


# ---- stage 3: encode (the model) ------------------------------------------------------------------------
def encode_columns(encoder: Encoder, cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Adds `vector` (zeros for failed files) and `fingerprint`; drops `pixels`."""
    out = {k: v for k, v in cols.items() if k != "pixels"}
    ok = out["error"] == ""
    vectors = np.zeros((len(ok), encoder.dim), np.float32)
    if ok.any():
        vectors[ok] = encoder.encode_pixels(cols["pixels"][ok])
    bad = ok & ~finite_rows(vectors)  # such a file is skipped, with the reason, like an unreadable one
    if bad.any():
        out["error"] = np.where(bad, NOT_FINITE, out["error"])
    vectors[bad] = 0.0
    out["vector"] = vectors
    out["fingerprint"] = np.array([str(encoder.fingerprint)] * len(ok))
    return out
