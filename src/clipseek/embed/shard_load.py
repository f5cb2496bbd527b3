"""Reading a `clipseek embed` output folder back (`clipseek index --from-parquet`), trusting none of it.

The folder may come from anyone, so every level is checked before anything of it is used:

- the manifest (`load_manifest`): a JSON object whose `fingerprint` is a model fingerprint and whose
  `dim` is a whole number from 1 to MAX_DIM once a model is recorded; otherwise the whole load is
  refused with one line (ShardFolderError, exit 2), as for a folder that is no embed output at all;
- a shard file (`load_shard`): it must be Parquet, have the columns `embed` writes and vectors of the
  job's dim; otherwise that shard is skipped with the reason (BadShard) and the others load;
- a row: an absolute, normalised local path (from `path_bytes`, or `path` in shards written before it)
  inside the job's source folder when the job embedded a folder, a blake2b-128 hex hash, a positive
  size, an mtime, a positive width and height, and a finite unit vector of the job's dim; otherwise
  the row is refused with its reason and the shard's other rows load;
- the skip list (`load_skipped`): entries that are not a path and a reason are left out (counted).
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field

import numpy as np

from clipseek.embed.shards import (
    MANIFEST,
    BadShard,
    ShardFolderError,
    manifest_fingerprint,
    pyarrow,
    read_manifest,
    shard_fingerprint,
    shard_path,
)
from clipseek.errors import Skipped
from clipseek.model.fingerprint import Fingerprint, FingerprintError

MAX_DIM = 65_536
MAX_SIDE = 2**31 - 1         # the int32 columns
UNIT_TOLERANCE = 0.01        # |norm - 1| of a stored unit vector (float16 rounding is ~1e-3)
MAX_REASON = 500
COLUMNS = ("hash", "size", "mtime_ns", "width", "height", "vector")
_HASH = re.compile(r"[0-9a-f]{32}")


@dataclass
class Job:
    """A checked manifest: the model and dim of its vectors (None before a shard was written), and the
    folder every row must lie in (None for a job that embedded a list of paths)."""

    fingerprint: Fingerprint | None
    dim: int | None
    root: str | None


@dataclass
class LoadedShard:
    rows: list[tuple]            # (path, hash, size, mtime_ns, width, height), each checked
    vectors: np.ndarray          # (len(rows), dim) float32, finite, unit
    fingerprint: Fingerprint
    refused: list[Skipped] = field(default_factory=list)  # rows that failed a check, with the reason


def load_manifest(out_dir: str) -> Job:
    """The job of `out_dir`, checked (see the module doc); ShardFolderError naming what is wrong."""
    doc = read_manifest(out_dir)
    where = os.path.join(out_dir, MANIFEST)
    try:
        fp = manifest_fingerprint(doc)
    except FingerprintError as e:
        raise ShardFolderError(f"{where}: {e}") from None
    dim = doc.get("dim")
    if fp is not None and (not isinstance(dim, int) or isinstance(dim, bool) or not 1 <= dim <= MAX_DIM):
        raise ShardFolderError(f"{where}: no valid 'dim' (a whole number from 1 to {MAX_DIM}, got "
                               f"{str(dim)[:40]}); the folder cannot be loaded")
    source = doc.get("source")
    root = None
    if isinstance(source, str) and os.path.isabs(source) and "\0" not in source \
            and not os.path.isfile(source):  # a folder job (a list file names paths anywhere)
        root = os.path.normpath(source)
    return Job(fp, dim if fp is not None else None, root)


def load_shard(path: str, dim: int | None = None, root: str | None = None) -> LoadedShard:
    """Shard `path`'s rows that pass every check (vectors of `dim`: the job's; None: the shard's own),
    and the refused ones with their reasons. BadShard when the file as a whole cannot be used."""
    _, pq = pyarrow()
    fp = shard_fingerprint(path)
    try:
        with open(path, "rb") as f:
            t = pq.read_table(f)
    except OSError as e:
        raise BadShard(path, f"cannot read: {e.strerror or e}") from None
    except Exception as e:  # pyarrow's errors for a damaged file
        raise BadShard(path, f"not a readable Parquet file ({_one_line(e)})") from None
    missing = [c for c in COLUMNS if c not in t.column_names]
    if "path" not in t.column_names and "path_bytes" not in t.column_names:
        missing.insert(0, "path_bytes")
    if missing:
        raise BadShard(path, f"no column {missing[0]!r} (a shard has path_bytes, {', '.join(COLUMNS)})")
    _check_types(t, path)
    vectors, lengths = _vectors(t.column("vector").combine_chunks(), dim, path)
    dim = dim or vectors.shape[1]
    paths = t.column("path_bytes" if "path_bytes" in t.column_names else "path").to_pylist()
    cols = [t.column(c).to_pylist() for c in COLUMNS[:-1]]
    rows, keep, refused = [], [], []
    name = os.path.basename(path)
    for n, (p, *values) in enumerate(zip(paths, *cols)):
        p = os.fsdecode(p) if isinstance(p, bytes) else p
        why = path_problem(p, root) or _values_problem(*values) or _vector_problem(vectors[n], lengths[n], dim)
        if why:
            named = isinstance(p, str) and bool(p)  # the row's own path, else the shard's
            refused.append(Skipped(p if named else path, f"{name + ' ' if named else ''}row {n}: {why}"))
        else:
            rows.append((p, *values))
            keep.append(n)
    good = vectors[keep].astype(np.float32) if keep else np.zeros((0, dim), np.float32)
    return LoadedShard(rows, good, fp, refused)


def _check_types(t, path: str) -> None:
    """BadShard when a column is not of the kind `embed` writes (integers, text, bytes)."""
    pa, _ = pyarrow()
    kinds = {"hash": pa.types.is_string, "path": pa.types.is_string, "path_bytes": pa.types.is_binary,
             **{c: pa.types.is_integer for c in ("size", "mtime_ns", "width", "height")}}
    for col, test in kinds.items():
        if col in t.column_names:
            kind = t.schema.field(col).type
            kind = kind.value_type if pa.types.is_dictionary(kind) else kind
            if not (test(kind) or (col in ("hash", "path") and pa.types.is_large_string(kind))
                    or (col == "path_bytes" and pa.types.is_large_binary(kind))):
                raise BadShard(path, f"column {col!r} is {kind}, not what `clipseek embed` writes")


def path_problem(p, root: str | None) -> str | None:
    """Why `p` cannot be a gallery row's path (None when it can)."""
    if not isinstance(p, str) or not p:
        return "no path"
    if "\0" in p:
        return "a NUL byte in the path"
    if not os.path.isabs(p) or os.path.normpath(p) != p:
        return "not an absolute, normalised local path"
    if root is not None and p != root and not p.startswith(root.rstrip(os.sep) + os.sep):
        return f"outside the job's source folder {root}"
    return None


def _values_problem(h, size, mtime_ns, width, height) -> str | None:
    if not isinstance(h, str) or not _HASH.fullmatch(h):
        return f"hash {str(h)[:40]!r} is not 32 hex digits"
    if not _whole(size, 1, 2**63 - 1):
        return f"size {size!r} is not a positive whole number"
    if not _whole(mtime_ns, -(2**63), 2**63 - 1):
        return f"mtime_ns {mtime_ns!r} is not a whole number"
    if not (_whole(width, 1, MAX_SIDE) and _whole(height, 1, MAX_SIDE)):
        return f"width x height {width!r} x {height!r} is not positive"
    return None


def _whole(v, lo: int, hi: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _vector_problem(v: np.ndarray, length: int, dim: int) -> str | None:
    if length < 0:
        return "no vector"
    if length != dim:
        return f"a vector of {length} numbers, not {dim}"
    if not np.isfinite(v).all():
        return "a vector that is not finite (NaN or infinity)"
    norm = float(np.linalg.norm(v))
    if not math.isclose(norm, 1.0, abs_tol=UNIT_TOLERANCE):
        return f"not a unit vector (norm {norm:.4g})"
    return None


def _vectors(col, dim: int | None, path: str) -> tuple[np.ndarray, np.ndarray]:
    """The vector column as an (n, width) float64 array and each row's length (-1: null; a ragged
    row's own length, its numbers left NaN). BadShard when the column is not lists of numbers, or
    its fixed width is not the job's dim."""
    pa, _ = pyarrow()
    kind = col.type
    if not (pa.types.is_fixed_size_list(kind) or pa.types.is_list(kind) or pa.types.is_large_list(kind)) \
            or not (pa.types.is_floating(kind.value_type) or pa.types.is_integer(kind.value_type)):
        raise BadShard(path, f"column 'vector' is {kind}, not lists of numbers")
    if pa.types.is_fixed_size_list(kind):
        width = kind.list_size
        if dim is not None and width != dim:
            raise BadShard(path, f"vectors of {width} dimensions; the job's are {dim}")
        if not 1 <= width <= MAX_DIM:
            raise BadShard(path, f"vectors of {width} dimensions")
        flat = col.values.slice(col.offset * width, len(col) * width)
        out = flat.to_numpy(zero_copy_only=False).astype(np.float64).reshape(len(col), width)
        lengths = np.full(len(col), width)
    else:  # ragged lists (embed never writes them): row by row
        values = col.to_pylist()
        width = dim or max((len(v) for v in values if v is not None), default=0)
        out, lengths = np.full((len(col), width), np.nan), np.full(len(col), -1)
        for i, v in enumerate(values):
            if v is not None:
                lengths[i] = len(v)
                if len(v) == width:
                    out[i] = [np.nan if x is None else x for x in v]
    lengths[np.asarray(col.is_null().to_numpy(zero_copy_only=False), bool)] = -1
    return out, lengths


def load_skipped(out_dir: str, i: int) -> tuple[list[Skipped], Skipped | None]:
    """(the files shard i could not embed, a note on what of its skip list was left out or None)."""
    path = shard_path(out_dir, i, skipped=True)
    try:
        with open(path, "rb") as f:
            doc = json.loads(f.read())
    except FileNotFoundError:
        return [], None
    except (OSError, ValueError, RecursionError) as e:
        return [], Skipped(path, f"unreadable list of skipped files ({_one_line(e)})")
    if not isinstance(doc, list):
        return [], Skipped(path, "not a list of skipped files")
    out = [Skipped(d["path"], _printable(d["reason"])) for d in doc
           if isinstance(d, dict) and path_problem(d.get("path"), None) is None and isinstance(d.get("reason"), str)]
    bad = len(doc) - len(out)
    return out, Skipped(path, f"{bad} entries that are not a path and a reason left out") if bad else None


def _printable(text: str) -> str:
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= MAX_REASON else text[:MAX_REASON - 3] + "..."


def _one_line(e: BaseException, limit: int = 300) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def read_shard(path: str):
    """(rows [(path, hash, size, mtime_ns, width, height)], float32 vectors (n, D), Fingerprint) of a
    shard: the rows that pass `load_shard`'s checks. BadShard when the file cannot be used."""
    shard = load_shard(path)
    return shard.rows, shard.vectors, shard.fingerprint


def read_skipped(out_dir: str, i: int) -> list[Skipped]:
    return load_skipped(out_dir, i)[0]
