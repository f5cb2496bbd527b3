"""`clipseek index` and `clipseek search`: build a gallery database, then search it by text or image."""

from __future__ import annotations

from contextlib import ExitStack
from typing import List, Optional

import typer

from clipseek.cli.app import app
from clipseek.cli.options import limits, max_file_mb_option, max_pixels_option
from clipseek.cli.output import (
    BACKEND_HELP,
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
    backend: str = typer.Option("auto", "--backend", help=BACKEND_HELP),
    fmt: str = typer.Option("table", "--format", "-f", help="Summary as table or json."),
    from_parquet: Optional[str] = typer.Option(None, "--from-parquet", metavar="DIR",
                                               help="Load the Parquet shards of `clipseek embed` instead."),
    max_pixels: Optional[int] = max_pixels_option(),
    max_file_mb: Optional[float] = max_file_mb_option(),
    watch: bool = typer.Option(False, "--watch", help="Keep running: apply new, changed, moved and "
                               "deleted files as they happen, in batches. Ctrl-C stops."),
    poll: bool = typer.Option(False, "--poll", help="With --watch: poll the folders instead of file "
                              "events (automatic on network filesystems)."),
    poll_interval: float = typer.Option(2.0, "--poll-interval", min=0.05, help="Seconds between polls."),
) -> int:
    """Embed new and changed images into the gallery DB; prune deleted ones; recognise moved ones."""
    from clipseek.core.paths import quote_path
    from clipseek.errors import UsageError
    from clipseek.gallery.facade import Gallery

    check_format(fmt, ("table", "json"))
    lim = limits(max_pixels, max_file_mb)
    if bool(dirs) == bool(from_parquet):
        raise UsageError("give folders to index, or --from-parquet DIR (one of the two)")
    if watch and from_parquet:
        raise UsageError("--watch follows folders; it does not go with --from-parquet")
    gallery = Gallery(db, model=model, device=device, dtype=dtype, backend=backend)
    if model is None and not from_parquet:
        gallery = _model_when_needed(gallery, device, dtype, backend)
    if from_parquet:
        summary = gallery.index_parquet(from_parquet)
    else:
        summary = _index_dirs(gallery, dirs, batch_size, workers, lim)
    if not watch:
        gallery.close()
    report_skipped(summary.skipped, fmt)
    if fmt == "json":
        print_json(summary.to_dict())
    else:
        print(f"{summary.total} images in {quote_path(gallery.db_path)}: {summary.added} added, "
              f"{summary.updated} updated, {summary.moved} moved, {summary.removed} removed, "
              f"{summary.unchanged} unchanged, {len(summary.skipped)} skipped" +
              (f" ({summary.still_skipped} more skipped before, unchanged)" if summary.still_skipped else ""),
              flush=True)
    if watch:
        from clipseek.cli.watch_cmd import watch_index

        return watch_index(gallery, dirs, poll, poll_interval, fmt)
    return 0


def _model_when_needed(gallery, device, dtype, backend):
    """The gallery with its DB's own model loaded only when a file needs embedding
    (`model.lazy.LazyEncoder`): an unchanged re-index loads none. Unchanged when the DB is new."""
    import os

    from clipseek.gallery.facade import Gallery
    from clipseek.model.lazy import LazyEncoder

    if not os.path.isfile(gallery.db_path) or os.path.getsize(gallery.db_path) == 0:
        return gallery
    fp, dim = gallery.store.fingerprint, gallery.store.model_info().get("dim")
    if fp is None or dim is None:
        return gallery

    def load():  # the model exactly as Gallery resolves a DB's own model
        with Gallery(gallery.db_path, device=device, dtype=dtype, backend=backend) as resolver:
            return resolver.encoder

    gallery.close()
    return Gallery(gallery.db_path, LazyEncoder(fp, int(dim), load), device=device, dtype=dtype,
                   backend=backend)


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
    add: Optional[List[str]] = typer.Option(None, "--add", metavar="[W:]X",
                                            help="Add text or an image file to the query (repeatable), "
                                                 "optionally weighted: --add 0.5:sunset."),
    subtract: Optional[List[str]] = typer.Option(None, "--subtract", metavar="[W:]X",
                                                 help="Take text or an image file away (repeatable)."),
    relevant: bool = typer.Option(False, "--relevant",
                                  help="Only the results that stand out from this query's scores over "
                                       "the gallery (adapts to each query; see `relevance`)."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Only results with cosine >= S."),
    folders: Optional[List[str]] = typer.Option(None, "--in", metavar="FOLDER",
                                                help="Only images under this folder (repeatable)."),
    after: Optional[str] = typer.Option(None, "--after", metavar="DATE",
                                        help="Only photos taken on or after DATE (EXIF, else file time)."),
    before: Optional[str] = typer.Option(None, "--before", metavar="DATE", help="Only photos taken before DATE."),
    orientation: Optional[str] = typer.Option(None, "--orientation", help="landscape, portrait or square."),
    min_size: Optional[str] = typer.Option(None, "--min-size", metavar="WxH", help="At least this many pixels."),
    ext: Optional[str] = typer.Option(None, "--ext", metavar="EXTS", help="File types, e.g. jpg,png."),
    fmt: str = typer.Option("table", "--format", "-f", help="table, json or paths."),
    print0: bool = typer.Option(False, "--print0", help="With --format paths: end each name with NUL "
                                "instead of a new line, its bytes as they are (for xargs -0)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Default: the model the DB was built with."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, mps."),
    int8_text: bool = typer.Option(False, "--int8-text",
                                   help="Quantize the text tower to int8 on CPU (~3x faster query)."),
    max_pixels: Optional[int] = max_pixels_option(),
    max_file_mb: Optional[float] = max_file_mb_option(),
    backend: str = typer.Option("auto", "--backend", help=BACKEND_HELP),
) -> int:
    """Find the images most similar to a text query (or to an example image), optionally adding and
    subtracting meanings, among the images that pass the filters."""
    from clipseek.errors import UsageError
    from clipseek.gallery.facade import Gallery
    from clipseek.gallery.query import Filter, query_terms

    if print0 and fmt == "table":
        fmt = "paths"
    check_format(fmt, ("table", "json", "paths"))
    if print0 and fmt != "paths":
        raise UsageError("--print0 goes with --format paths")
    lim = limits(max_pixels, max_file_mb)
    where = Filter.parse(folders or (), after=after, before=before, orientation=orientation,
                         min_size=min_size, ext=ext)
    query_terms(query, image, add, subtract)  # bad terms fail here, before a model is loaded
    with Gallery(db, model=model, device=device, int8_text=int8_text, backend=backend) as gallery:
        results = gallery.search(text=query, image=image, k=top_k, threshold=threshold, add=add or (),
                                 subtract=subtract or (), where=where, relevant=relevant, limits=lim)
        passing = gallery.count(where) if where and not results else None
    if fmt == "json":
        print_json({"query": query, "image": image, "add": add or [], "subtract": subtract or [],
                    "filter": where.describe() if where else None, "relevant": relevant,
                    "results": [r.to_dict() for r in results]})
    elif fmt == "paths":
        print_paths([r.path for r in results], print0)
    else:
        print_table(None, ["path", "score", "relevance", "size"],
                    [[r.path, f"{r.score:.4f}", f"{r.relevance:.2f}" + (" *" if r.relevant else ""),
                      f"{r.width}x{r.height}"] for r in results])
    if passing == 0:
        eprint(f"no image passes the filter ({where.describe()})")
    elif not results:
        eprint("no results" + (f" with score >= {threshold}" if threshold is not None else "")
               + (" that stand out as relevant" if relevant else ""))
    return 0
