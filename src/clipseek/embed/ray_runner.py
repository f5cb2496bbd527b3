"""The Ray Data runner of `clipseek embed`: the stages of `embed_job`, distributed.

  from_items(path, shard) -> map_batches(decode_batch)   CPU tasks: read, hash, decode, preprocess
                          -> map_batches(EncodeActor)    actor pool; each actor loads the model once
                                                         (num_gpus per actor when the cluster has GPUs)
                          -> iter_batches in the driver  -> ShardAssembler writes each complete shard

Rows reach the driver in any order; a shard is written (atomically) as soon as all its files are in,
so a job killed mid-way keeps every shard written so far. Ray is optional: `pip install 'clipseek[ray]'`.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from clipseek.core.images import DEFAULT_LIMITS, ImageLimits
from clipseek.core.preprocess import PreprocessCfg
from clipseek.embed.assemble import ShardAssembler
from clipseek.embed.stages import (
    encode_columns,
    load_record,
    pixel_shape,
    stack_records,
)
from clipseek.errors import ClipseekError, UsageError
from clipseek.model.spec import ModelSpec


def import_ray():
    try:
        import ray
        import ray.data
    except ImportError:
        raise UsageError("--engine ray needs Ray: pip install 'clipseek[ray]'") from None
    return ray


def decode_batch(batch: dict, cfg: PreprocessCfg, shape: tuple, limits: ImageLimits) -> dict:
    """CPU stage: paths -> columns with pixels (the same `load_record` as the in-process runner).
    Paths travel through Ray as bytes (Arrow strings must be UTF-8; a file name need not be)."""
    cols = stack_records([load_record(os.fsdecode(p), cfg, limits) for p in batch["path"]], shape)
    cols["path"] = np.array([os.fsencode(p) for p in cols["path"]], dtype=object)
    cols["shard"] = np.asarray(batch["shard"])
    return cols


class EncodeActor:
    """Model stage: one model per actor, loaded when the actor starts."""

    def __init__(self, spec: ModelSpec):
        # `auto` is decided here, on the worker: ONNX Runtime on a CPU worker, torch on a GPU one. The
        # first actor to need an ONNX export makes it; the others wait on the cache's lock.
        self.encoder = spec.load()

    def __call__(self, batch: dict) -> dict:
        return encode_columns(self.encoder, batch)


def connect(ray, address: str | None) -> bool:
    """Join `address` (auto, ray://...) or start a local instance; True if we started it."""
    if ray.is_initialized():
        return False
    import logging

    ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING,
             log_to_driver=False, configure_logging=False)
    return True


def run_ray(spec: ModelSpec, assembler: ShardAssembler, todo: dict[int, list[str]], *, batch_size: int = 32,
            limits: ImageLimits = DEFAULT_LIMITS, address: str | None = None,
            num_gpus_per_worker: float | None = None, workers: int | None = None) -> None:
    ray = import_ray()
    from clipseek.model.loader import load_preprocess_cfg

    cfg = load_preprocess_cfg(spec.name)  # the processor config only; the weights load in the actors
    started = connect(ray, address)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = sys.stderr.isatty()
        gpus_total = float(ray.cluster_resources().get("GPU", 0))
        gpus = num_gpus_per_worker if num_gpus_per_worker is not None else (1.0 if gpus_total else 0.0)
        n_actors = workers or (max(1, int(gpus_total // gpus)) if gpus else 1)
        items = [{"path": os.fsencode(p), "shard": i} for i, paths in todo.items() for p in paths]
        cpus = int(ray.cluster_resources().get("CPU", 1))
        # enough blocks to keep every CPU decoding, and none bigger than 4096 files (retries stay cheap)
        blocks = max(1, min(len(items) // batch_size, 2 * cpus), -(-len(items) // 4096))
        ds = ray.data.from_items(items, override_num_blocks=blocks)
        shape = pixel_shape(cfg)
        # a decode task holds its files' bytes and a batch of pixels: reserve that much memory. The
        # reservation also keeps Ray from fusing decoding into the encoder actors (different remote
        # args), so decoding stays in CPU tasks with or without GPUs.
        memory = 256 * 2**20 + batch_size * (4 * int(np.prod(shape)) + 4 * 2**20)
        ds = ds.map_batches(decode_batch, batch_size=batch_size, batch_format="numpy", num_cpus=1,
                            memory=memory,
                            fn_kwargs={"cfg": cfg, "shape": shape, "limits": limits})
        ds = ds.map_batches(EncodeActor, batch_size=batch_size, batch_format="numpy",
                            compute=ray.data.ActorPoolStrategy(size=n_actors), num_gpus=gpus,
                            fn_constructor_kwargs={"spec": spec})
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            assembler.add(batch)
    except ray.exceptions.RayError as e:
        raise ClipseekError(f"the Ray job failed: {_first_line(e)}") from e
    finally:
        if started:
            ray.shutdown()


def _first_line(e: Exception) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    errs = [ln for ln in lines if "Error" in ln and not ln.startswith(("File ", "Traceback"))]
    return (errs[-1] if errs else lines[0] if lines else type(e).__name__)[:300]
