"""`clipseek embed`: embed a folder / path list into Parquet shards, in-process or on a Ray cluster."""

from __future__ import annotations

from typing import Optional

import typer

from clipseek.cli.app import app
from clipseek.cli.options import (
    backend_option,
    batch_size_option,
    device_option,
    dtype_option,
    finite,
    format_option,
    limits,
    max_file_mb_option,
    max_pixels_option,
    model_option,
)
from clipseek.cli.output import check_format, eprint, print_json, report_skipped


@app.command("embed")
def embed_cmd(
    source: str = typer.Argument(..., help="A folder, a text file of paths/URIs, or a .parquet/.csv with a "
                                           "path column."),
    out: str = typer.Option(..., "--out", "-o", help="Output folder for the shards (re-run to resume)."),
    engine: str = typer.Option("local", "--engine", help="local (in-process) or ray."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster: auto or ray://HOST:10001. "
                                          "Default: a local Ray instance."),
    num_gpus_per_worker: Optional[float] = typer.Option(None, "--num-gpus-per-worker", callback=finite(0, 64),
                                                        help="GPUs per encoder actor (Ray). Default: 1 if the "
                                                             "cluster has GPUs, else 0."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1,
                                          help="Encoder actors (Ray) or decoding threads (local)."),
    batch_size: int = batch_size_option(),
    model: Optional[str] = model_option(),
    device: str = device_option("auto, cpu, cuda, cuda:N, mps (on each worker)."),
    dtype: str = dtype_option(),
    backend: str = backend_option("With --engine ray, each encoder actor decides auto for its own device."),
    shard_size: int = typer.Option(10_000, "--shard-size", min=1, help="Files per Parquet shard."),
    path_column: Optional[str] = typer.Option(None, "--path-column", help="Column of paths in a .parquet/.csv source."),
    vector_dtype: str = typer.Option("float32", "--vector-dtype", help="float32 or float16 in the shards."),
    fmt: str = format_option("table", "json", what="The summary as "),
    max_pixels: Optional[int] = max_pixels_option(),
    max_file_mb: Optional[float] = max_file_mb_option(),
) -> int:
    """Embed many images into Parquet shards (then: clipseek index --from-parquet DIR)."""
    from clipseek.core.paths import quote_path
    from clipseek.embed.job import embed_job
    from clipseek.model.spec import ModelSpec

    check_format(fmt, ("table", "json"))
    summary = embed_job(source, out, engine=engine, spec=ModelSpec(model, device, dtype, backend),
                        shard_size=shard_size, batch_size=batch_size, workers=workers,
                        path_column=path_column, vector_dtype=vector_dtype,
                        limits=limits(max_pixels, max_file_mb),
                        ray_options={"address": address, "num_gpus_per_worker": num_gpus_per_worker},
                        on_shard=lambda s: eprint(f"shard {s.index}: {len(s.rows)} embedded, "
                                                  f"{len(s.skipped)} skipped"))
    report_skipped(summary.skipped, fmt)
    if fmt == "json":
        print_json(summary.to_dict())
        return 0
    print(f"{summary.files} files in {summary.shards} shards at {quote_path(summary.out_dir)}: "
          f"{summary.shards_written} shards written ({summary.shards_done_before} already done), "
          f"{summary.embedded} embedded, {len(summary.skipped)} skipped, {summary.seconds:.1f}s")
    return 0
