"""The output of `clipseek embed`: Parquet shards in a folder and a manifest (read back, checked, by
`embed.shard_load`).

Layout of DIR:
  manifest.json                 the job: source (absolute), file count, path-list digest, shard size and count,
                                model fingerprint and dim (set when the model is loaded, before the
                                first batch), vector dtype
  .lock                         the one-writer lock (`_io.writer_lock`) of the job running now
  shard-00000.parquet           embedded files of shard 0: path, path_bytes, hash, size, mtime_ns,
                                width, height, vector (fixed_size_list<float32|float16>[dim]),
                                fingerprint
  shard-00000.skipped.json      files of shard 0 that could not be embedded, with reasons

Shard i holds sorted-paths[i*S:(i+1)*S]. Each file is written to a temp name and renamed into place,
the .parquet last: a shard is done exactly when its .parquet exists, so a re-run redoes only the
missing ones. Parquet strings must be UTF-8 and a file name need not be, so `path` holds the name as
text (bytes that are not UTF-8 shown as U+FFFD) and `path_bytes` its exact bytes, which readers use
(shards written before `path_bytes` existed are read from `path`). pyarrow is imported lazily (it comes with `pip
install 'clipseek[ray]'`).
"""

from __future__ import annotations

import glob
import json
import os
import re
from dataclasses import dataclass, field

import numpy as np

from clipseek._io import atomic_write, atomic_write_json
from clipseek.core.paths import text_or_replacement
from clipseek.errors import ClipseekError, ModelMismatchError, Skipped, UsageError
from clipseek.model.fingerprint import Fingerprint, FingerprintError

MANIFEST = "manifest.json"
ROW_FIELDS = ("path", "hash", "size", "mtime_ns", "width", "height")  # a shard row, besides its vector
FORMAT = 1
VECTOR_DTYPES = ("float32", "float16")
_SHARD_RE = re.compile(r"shard-(\d{5,})\.parquet$")


class ShardError(ClipseekError):
    """An embedding job went wrong at run time (a shard short of rows, rows from two models): exit 1."""


class ShardFolderError(ShardError, UsageError):
    """The --out folder belongs to another job (or lost its manifest): a bad argument, exit 2."""


class BadShard(ShardError):
    """One shard file cannot be loaded (not Parquet, a column missing, vectors of another dim): the
    loader skips it with this reason and goes on."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise UsageError("Parquet shards need pyarrow: pip install 'clipseek[ray]' (or pip install pyarrow)") from None
    return pa, pq


def shard_path(out_dir: str, i: int, skipped: bool = False) -> str:
    return os.path.join(out_dir, f"shard-{i:05d}" + (".skipped.json" if skipped else ".parquet"))


def done_shards(out_dir: str) -> set[int]:
    return {int(m.group(1)) for p in glob.glob(os.path.join(out_dir, "shard-*.parquet"))
            if (m := _SHARD_RE.search(os.path.basename(p)))}


@dataclass
class Shard:
    """One shard's results, in path order."""

    index: int
    fingerprint: Fingerprint
    rows: list[tuple[str, str, int, int, int, int]]   # (path, hash, size, mtime_ns, width, height)
    vectors: np.ndarray                               # (len(rows), D) float32 unit vectors
    skipped: list[Skipped] = field(default_factory=list)


# ---- the job's manifest ------------------------------------------------------------------------------
def open_job(out_dir: str, job: dict) -> dict:
    """Create DIR and its manifest, or check that DIR holds this same job. Returns the manifest."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, MANIFEST)
    if not os.path.exists(path):
        if done_shards(out_dir):
            raise ShardFolderError(f"{out_dir} has shards but no {MANIFEST}; use an empty --out folder")
        manifest = {"format": FORMAT, **job, "fingerprint": None}
        atomic_write_json(path, manifest)
        return manifest
    manifest = read_manifest(out_dir)
    for stale in glob.glob(os.path.join(out_dir, "*.tmp-*")):  # left by a killed run
        os.remove(stale)
    for key in ("paths_digest", "shard_size", "vector_dtype"):
        if manifest.get(key) != job[key]:
            raise ShardFolderError(f"{out_dir} holds another embedding job ({key} differs: source "
                             f"{manifest.get('source')}, {manifest.get('num_files')} files, shard size "
                             f"{manifest.get('shard_size')}); use another --out folder")
    return manifest


def read_manifest(out_dir: str) -> dict:
    """The job's manifest as a dict; UsageError (exit 2) when it is missing or not a JSON object."""
    path = os.path.join(out_dir, MANIFEST)
    try:
        with open(path, "rb") as f:
            doc = json.loads(f.read())
    except FileNotFoundError:
        raise UsageError(f"{out_dir} is not a `clipseek embed` output folder (no {MANIFEST})") from None
    except (OSError, ValueError, RecursionError) as e:
        raise ShardFolderError(f"{path}: not a `clipseek embed` manifest ({_one_line(e)})") from None
    if not isinstance(doc, dict):
        raise ShardFolderError(f"{path}: not a `clipseek embed` manifest (not a JSON object)")
    return doc


def manifest_fingerprint(manifest: dict) -> Fingerprint | None:
    """The model of the job's vectors (None until the first shard is written)."""
    text = manifest.get("fingerprint")
    if text is not None and not isinstance(text, str):
        raise FingerprintError(f"not a clipseek model fingerprint: {str(text)[:80]}")
    return None if text is None else Fingerprint.parse(text)


def check_model(manifest: dict, fingerprint: Fingerprint, where: str) -> None:
    have = manifest_fingerprint(manifest)
    if have is not None and not have.same_weights(fingerprint):
        raise ModelMismatchError(f"{where} holds vectors of model [{have}] but this job's model is "
                         f"[{fingerprint}]; use another --out folder")


def bind_model(out_dir: str, manifest: dict, fingerprint: Fingerprint, dim: int) -> None:
    """Record the model (fingerprint, dim, name, dtype, framing) of the first shard written."""
    check_model(manifest, fingerprint, out_dir)
    info = {"fingerprint": str(fingerprint), "dim": dim, "model": fingerprint.name,
            "dtype": fingerprint.dtype, "framing": fingerprint.framing}
    if manifest.get("fingerprint") is None:
        manifest.update(info)
        atomic_write_json(os.path.join(out_dir, MANIFEST), manifest)


def record_model_name(out_dir: str, manifest: dict, name: str) -> None:
    """Before the first shard: remember which model the job runs, so a re-run without --model (after a
    kill before any shard was written) uses it."""
    if manifest.get("fingerprint") is None and manifest.get("model") != name:
        manifest["model"] = name
        atomic_write_json(os.path.join(out_dir, MANIFEST), manifest)


# ---- writing and reading shards ---------------------------------------------------------------------
def write_shard(out_dir: str, shard: Shard, vector_dtype: str = "float32") -> str:
    """Skipped list, then the Parquet file, each atomically; returns the Parquet path."""
    pa, pq = pyarrow()
    atomic_write_json(shard_path(out_dir, shard.index, skipped=True),
                      [{"path": s.path, "reason": s.reason} for s in shard.skipped])
    dim = shard.vectors.shape[1]
    flat = np.ascontiguousarray(shard.vectors, dtype=vector_dtype).reshape(-1)
    cols = list(zip(*shard.rows)) if shard.rows else [[]] * 6
    value_type = pa.float16() if vector_dtype == "float16" else pa.float32()
    table = pa.table({
        "path": pa.array([text_or_replacement(p) for p in cols[0]], pa.string()),
        "path_bytes": pa.array([os.fsencode(p) for p in cols[0]], pa.binary()),
        "hash": pa.array(cols[1], pa.string()),
        "size": pa.array(cols[2], pa.int64()), "mtime_ns": pa.array(cols[3], pa.int64()),
        "width": pa.array(cols[4], pa.int32()), "height": pa.array(cols[5], pa.int32()),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(flat, value_type), dim),
        "fingerprint": pa.array([str(shard.fingerprint)] * len(shard.rows), pa.string()).dictionary_encode(),
    }).replace_schema_metadata({"clipseek.fingerprint": str(shard.fingerprint)})
    target = shard_path(out_dir, shard.index)
    atomic_write(target, lambda tmp: _write_table(pq, table, tmp))
    return target


def _write_table(pq, table, path: str) -> None:
    """Through a Python file: pyarrow takes a path as UTF-8, and a folder's name need not be."""
    with open(path, "wb") as f:
        pq.write_table(table, f)


def shard_fingerprint(path: str) -> Fingerprint:
    """The model named in a shard's schema metadata; BadShard if the file is not Parquet or has none."""
    _, pq = pyarrow()
    try:
        with open(path, "rb") as f:
            meta = pq.read_schema(f).metadata or {}
        return Fingerprint.parse(meta.get(b"clipseek.fingerprint", b"").decode("utf-8", "replace"))
    except FingerprintError as e:
        raise BadShard(path, str(e)) from None
    except OSError as e:
        raise BadShard(path, f"cannot read: {e.strerror or e}") from None
    except Exception as e:  # pyarrow's errors for a file that is not Parquet
        raise BadShard(path, f"not a Parquet file ({_one_line(e)})") from None


def _one_line(e: BaseException, limit: int = 300) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."
