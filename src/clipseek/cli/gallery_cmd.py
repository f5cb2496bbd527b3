"""`clipseek index` and `clipseek search`: build a gallery database, then search it by text or image."""

from __future__ import annotations

from contextlib import ExitStack
from typing import List, Optional

import typer

from clipseek.cli.app import app
from clipseek.cli.options import limits, max_file_mb_option, max_pixels_option
from clipseek.cli.output import (
    check_format,
    eprint,
    print_json,
    print_paths,
    print_table,
    progress,
    report_skipped,
)

DB_HELP = "Gallery database (SQLite). Default: ./clipseek.db"


@app.command("index")
def index_cmd(
    dirs: Optional[List[str]] = typer.Argument(None, help="Folders to index (recursively)."),
    db: str = typer.Option("clipseek.db", "--db", help=DB_HELP),
    model: Optional[str] = typer.Option(None, "--model", "-m",
                                        help="Hub id or checkpoint dir. Default: the DB's model, else the default model."),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Decoding threads."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, mps."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="auto, fp32, fp16, bf16, int8 (CPU)."),
    fmt: str = typer.Option("table", "--format", "-f", help="Summary as table or json."),
    from_parquet: Optional[str] = typer.Option(None, "--from-parquet", metavar="DIR",
                                               help="Load the Parquet shards of `clipseek embed` instead."),
    max_pixels: Optional[int] = max_pixels_option(),
    max_file_mb: Optional[float] = max_file_mb_option(),
) -> int:
    """Embed new and changed images into the gallery DB; prune deleted ones; recognise moved ones."""
    from clipseek.core.paths import quote_path
    from clipseek.errors import UsageError
    from clipseek.gallery.facade import Gallery

    check_format(fmt, ("table", "json"))
    lim = limits(max_pixels, max_file_mb)
    if bool(dirs) == bool(from_parquet):
        raise UsageError("give folders to index, or --from-parquet DIR (one of the two)")
    gallery = Gallery(db, model=model, device=device, dtype=dtype)
    if from_parquet:
        summary = gallery.index_parquet(from_parquet)
    else:
        summary = _index_dirs(gallery, dirs, batch_size, workers, lim)
    gallery.close()
    report_skipped(summary.skipped, fmt)
    if fmt == "json":
        print_json(summary.to_dict())
        return 0
    print(f"{summary.total} images in {quote_path(gallery.db_path)}: {summary.added} added, {summary.updated} updated, "
          f"{summary.moved} moved, {summary.removed} removed, {summary.unchanged} unchanged, "
          f"{len(summary.skipped)} skipped" +
          (f" ({summary.still_skipped} more skipped before, unchanged)" if summary.still_skipped else ""))
    return 0


def _index_dirs(gallery, dirs, batch_size, workers, lim):
    with ExitStack() as stack:
        advance = [lambda n=1: None]

        def on_start(total: int) -> None:
            if total:
                advance[0] = stack.enter_context(progress(total, "indexing"))

        return gallery.index(dirs, batch_size=batch_size, workers=workers, limits=lim, on_start=on_start,
                             on_progress=lambda n: advance[0](n))


@app.command("search")
def search_cmd(
    query: Optional[str] = typer.Argument(None, help='Text to search for, e.g. "a dog on a beach".'),
    db: str = typer.Option("clipseek.db", "--db", help=DB_HELP),
    top_k: int = typer.Option(10, "--top-k", "-k", min=1, help="Number of results."),
    image: Optional[str] = typer.Option(None, "--image", help="Search by an example image instead of text."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Only results with cosine >= S."),
    fmt: str = typer.Option("table", "--format", "-f", help="table, json or paths."),
    print0: bool = typer.Option(False, "--print0", help="With --format paths: end each name with NUL "
                                "instead of a new line, its bytes as they are (for xargs -0)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Default: the model the DB was built with."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, mps."),
    int8_text: bool = typer.Option(False, "--int8-text",
                                   help="Quantize the text tower to int8 on CPU (~3x faster query)."),
    max_pixels: Optional[int] = max_pixels_option(),
    max_file_mb: Optional[float] = max_file_mb_option(),
) -> int:
    """Find the images most similar to a text query (or to an example image)."""
    from clipseek.errors import UsageError
    from clipseek.gallery.facade import Gallery

    if print0 and fmt == "table":
        fmt = "paths"
    check_format(fmt, ("table", "json", "paths"))
    if print0 and fmt != "paths":
        raise UsageError("--print0 goes with --format paths")
    lim = limits(max_pixels, max_file_mb)
    with Gallery(db, model=model, device=device, int8_text=int8_text) as gallery:
        results = gallery.search(text=query, image=image, k=top_k, threshold=threshold, limits=lim)
    if fmt == "json":
        print_json({"query": query, "image": image, "results": [r.to_dict() for r in results]})
    elif fmt == "paths":
        print_paths([r.path for r in results], print0)
    else:
        print_table(None, ["path", "score", "size"],
                    [[r.path, f"{r.score:.4f}", f"{r.width}x{r.height}"] for r in results])
    if not results:
        eprint("no results" + (f" with score >= {threshold}" if threshold is not None else ""))
    return 0
