"""`clipseek embed`: a batch embedding job as stages, driven by a swappable runner.

  list files (`list_source`) -> split into shards (`plan_shards`) -> read + decode (`load_record`,
  CPU) -> encode (`encode_columns`, the model) -> assemble per shard (`ShardAssembler`) -> write
  (`shards.write_shard`, atomic)

Batches travel between stages as columns (a dict of numpy arrays), the format Ray Data passes to
`map_batches`, so the in-process runner here and the Ray runner (`ray_runner.py`) call the very same
functions. Only shards without a .parquet yet are run, so an interrupted job resumes.
"""

from __future__ import annotations

import csv
import hashlib
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from clipseek.core.images import DEFAULT_LIMITS, ImageLimits, walk_images
from clipseek.embed import shards
from clipseek.embed.assemble import ShardAssembler
from clipseek.embed.stages import (
    batched,
    default_workers,
    encode_columns,
    is_uri,
    load_record,
    ordered_map,
    pixel_shape,
    stack_records,
)
from clipseek._io import writer_lock
from clipseek.errors import BusyError, Skipped, UsageError
from clipseek.model.fingerprint import Fingerprint
from clipseek.model.spec import ModelSpec

if TYPE_CHECKING:
    from clipseek.model.base import Encoder

DEFAULT_SHARD_SIZE = 10_000
LOCK = ".lock"  # the one-writer lock file in the output folder


# ---- stage 1: list files ---------------------------------------------------------------------------
def list_source(source: str, path_column: str | None = None) -> list[str]:
    """A folder (images, recursively), a .parquet/.csv with a path column, or a text list of paths/URIs.
    Local paths become absolute (relative ones in a list file are relative to that file). Sorted, unique."""
    if os.path.isdir(source):
        paths = [os.path.abspath(p) for p in walk_images(source)]
    elif not os.path.isfile(source):
        raise UsageError(f"source not found: {source}")
    elif source.endswith(".parquet"):
        pa, pq = shards.pyarrow()
        col = path_column or "path"
        with open(source, "rb") as f:  # a Python file: pyarrow takes a path as UTF-8
            table = pq.read_table(f)
        if col not in table.column_names:
            raise UsageError(f"{source} has no column {col!r} (columns: {', '.join(table.column_names)}); "
                             "use --path-column")
        paths = _resolve(source, table.column(col).to_pylist())
    elif source.endswith(".csv"):
        col = path_column or "path"
        with open(source, newline="", encoding="utf-8-sig", errors="surrogateescape") as f:
            reader = csv.DictReader(f)
            try:
                if col not in (reader.fieldnames or []):
                    raise UsageError(f"{source} has no column {col!r}; use --path-column")
                paths = _resolve(source, [row[col] for row in reader])
            except csv.Error as e:  # a field over csv's limit (131,072 bytes), a NUL byte
                raise UsageError(f"{source}:{reader.line_num + 1}: unreadable CSV row ({e})") from None
    else:
        with open(source, encoding="utf-8", errors="surrogateescape") as f:  # any bytes a name may hold
            paths = _resolve(source, [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")])
    return sorted(set(paths))


def _resolve(list_file: str, items: list) -> list[str]:
    base = os.path.dirname(os.path.abspath(list_file))
    names = [os.fsdecode(p) if isinstance(p, bytes) else str(p) for p in items if p]  # a binary column
    return [p if is_uri(p) else os.path.join(base, os.path.expanduser(p)) for p in names]


def plan_shards(paths: list[str], shard_size: int) -> list[list[str]]:
    if shard_size < 1:
        raise UsageError("--shard-size must be at least 1")
    return [paths[i:i + shard_size] for i in range(0, len(paths), shard_size)]


def paths_digest(paths: list[str]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for p in paths:
        h.update(p.encode("utf-8", "surrogateescape") + b"\0")
    return h.hexdigest()


# ---- the job ----------------------------------------------------------------------------------------
@dataclass
class EmbedSummary:
    out_dir: str
    files: int
    shards: int
    shards_done_before: int
    shards_written: int = 0
    embedded: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    fingerprint: Fingerprint | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"out": self.out_dir, "files": self.files, "shards": self.shards,
                "shards_done_before": self.shards_done_before, "shards_written": self.shards_written,
                "embedded": self.embedded, "fingerprint": str(self.fingerprint) if self.fingerprint else None,
                "seconds": round(self.seconds, 3),
                "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped]}


def prepare_job(source: str, out_dir: str, shard_size: int = DEFAULT_SHARD_SIZE,
                path_column: str | None = None, vector_dtype: str = "float32"):
    """List and shard the source, open (or check) DIR: (manifest, {shard index: paths} still to do, summary)."""
    if vector_dtype not in shards.VECTOR_DTYPES:
        raise UsageError(f"unknown vector dtype {vector_dtype!r}; choose from {', '.join(shards.VECTOR_DTYPES)}")
    shards.pyarrow()  # fail fast, before listing millions of files
    paths = list_source(source, path_column)
    if not paths:
        raise UsageError(f"no images found in {source}")
    planned = plan_shards(paths, shard_size)
    out_dir = os.path.abspath(out_dir)
    manifest = shards.open_job(out_dir, {"source": os.path.abspath(source), "num_files": len(paths),
                                         "shard_size": shard_size,
                                         "num_shards": len(planned), "paths_digest": paths_digest(paths),
                                         "vector_dtype": vector_dtype})
    done = shards.done_shards(out_dir)
    todo = {i: p for i, p in enumerate(planned) if i not in done}
    summary = EmbedSummary(out_dir, len(paths), len(planned), len(planned) - len(todo),
                           fingerprint=shards.manifest_fingerprint(manifest))
    return manifest, todo, summary


def run_local(encoder: Encoder, assembler: ShardAssembler, todo: dict[int, list[str]], batch_size: int = 32,
              workers: int | None = None, limits: ImageLimits = DEFAULT_LIMITS) -> None:
    """The in-process runner: decode in a thread pool, overlapping the encoder, one shard after another."""
    workers = workers or default_workers()
    cfg, shape = encoder.preprocess_cfg, pixel_shape(encoder.preprocess_cfg)
    for i, paths in todo.items():
        loaded = ordered_map(lambda p: load_record(p, cfg, limits), paths, workers,
                             ahead=2 * batch_size + workers)
        for batch in batched((rec for _, rec in loaded), batch_size):
            assembler.add(encode_columns(encoder, stack_records(batch, shape)), shard=i)


@dataclass(frozen=True)
class JobOptions:
    """How a job cuts and writes its work (everything but the model and the source)."""

    shard_size: int = DEFAULT_SHARD_SIZE
    batch_size: int = 32
    workers: int | None = None          # decoding threads (local engine) or encoder actors (ray)
    path_column: str | None = None      # the column of paths in a .parquet/.csv source
    vector_dtype: str = "float32"       # float32 or float16 in the shards
    limits: ImageLimits = DEFAULT_LIMITS
    ray_options: dict | None = None     # other arguments of ray_runner.run_ray (address, num_gpus_per_worker)


def embed_job(source: str, out_dir: str, encoder: Encoder | None = None, *, engine: str = "local",
              spec: ModelSpec | None = None, on_shard: Callable[[shards.Shard], None] | None = None,
              **options) -> EmbedSummary:
    """Embed every image of `source` into Parquet shards in `out_dir`; resumes an interrupted job.
    The model: `encoder`, or `spec` (loaded here, or in each Ray actor), or the one the folder's
    manifest names. `options`: the fields of `JobOptions` (shard_size, batch_size, workers, ...).
    One job writes a folder at a time: a second one exits at once (BusyError, naming the first)."""
    opts = JobOptions(**options)
    if engine not in ("local", "ray"):
        raise UsageError(f"unknown engine {engine!r}; choose local or ray")
    if not is_uri(source) and not os.path.exists(source):
        raise UsageError(f"source not found: {source}")
    out_dir = os.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    with writer_lock(os.path.join(out_dir, LOCK), out_dir, BusyError):
        return _run_job(source, out_dir, encoder, engine, spec or ModelSpec(), opts, on_shard)


def _run_job(source: str, out_dir: str, encoder: Encoder | None, engine: str, spec: ModelSpec,
             opts: JobOptions, on_shard: Callable[[shards.Shard], None] | None) -> EmbedSummary:
    from clipseek.model.fingerprint import model_source
    from clipseek.model.loader import DEFAULT_MODEL

    t0 = time.perf_counter()
    manifest, todo, summary = prepare_job(source, out_dir, opts.shard_size, opts.path_column, opts.vector_dtype)
    spec = spec.replace(name=model_source(spec.name or manifest.get("model") or DEFAULT_MODEL))

    def done(shard: shards.Shard) -> None:
        summary.shards_written += 1
        summary.embedded += len(shard.rows)
        summary.skipped.extend(shard.skipped)
        if on_shard:
            on_shard(shard)

    assembler = ShardAssembler(summary.out_dir, manifest, todo, opts.vector_dtype, done)
    if todo and engine == "local":
        if encoder is None:
            encoder = spec.load()
        shards.bind_model(summary.out_dir, manifest, encoder.fingerprint, encoder.dim)  # before any batch
        run_local(encoder, assembler, todo, opts.batch_size, opts.workers, opts.limits)
    elif todo:
        from clipseek.embed.ray_runner import run_ray

        shards.record_model_name(summary.out_dir, manifest, spec.name)  # the actors compute the fingerprint
        run_ray(spec, assembler, todo, batch_size=opts.batch_size, limits=opts.limits,
                **{"workers": opts.workers, **(opts.ray_options or {})})
    if assembler.pending:
        raise shards.ShardError(f"shards {assembler.pending[:5]} did not receive all their files")
    summary.fingerprint = shards.manifest_fingerprint(manifest)
    summary.seconds = time.perf_counter() - t0
    return summary
