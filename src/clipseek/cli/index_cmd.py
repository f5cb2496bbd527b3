"""`clipseek index`: folders (or `embed` shards) into a gallery database; `--watch` keeps it in step."""

from __future__ import annotations

from contextlib import ExitStack
from typing import List, Optional

import typer

from clipseek.cli.app import app
from clipseek.cli.options import (
    DB_HELP,
    DTYPE_HELP,
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
    spec_dtype,
)
from clipseek.cli.output import (
    check_format,
    eprint,
    print_json,
    progress,
    report_skipped,
)


@app.command("index")
def index_cmd(
    dirs: Optional[List[str]] = typer.Argument(None, help="Folders to index (recursively)."),
    db: str = typer.Option("clipseek.db", "--db", help=DB_HELP),
    model: Optional[str] = model_option("Hub id or checkpoint dir. Default: the DB's model, else the "
                                        "default model."),
    batch_size: int = batch_size_option(),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Decoding threads."),
    device: str = device_option(),
    dtype: str = dtype_option(DTYPE_HELP + " auto: the database's own, for a database that exists."),
    backend: str = backend_option(),
    fmt: str = format_option("table", "json", what="The summary as "),
    from_parquet: Optional[str] = typer.Option(None, "--from-parquet", metavar="DIR",
                                               help="Load the Parquet shards of `clipseek embed` instead."),
    max_pixels: Optional[int] = max_pixels_option(),
    max_file_mb: Optional[float] = max_file_mb_option(),
    watch: bool = typer.Option(False, "--watch", help="Keep running: apply new, changed, moved and "
                               "deleted files as they happen, in batches. Ctrl-C stops."),
    poll: bool = typer.Option(False, "--poll", help="With --watch: poll the folders instead of file "
                              "events (automatic on network filesystems)."),
    poll_interval: float = typer.Option(2.0, "--poll-interval", callback=finite(0.05, 3600),
                                        help="Seconds between polls."),
    follow_links: Optional[bool] = typer.Option(None, "--follow-links/--no-follow-links",
                                                help="Index symbolic links to files outside the folders "
                                                "(off by default; the choice is kept in the DB for later "
                                                "runs and --watch)."),
) -> int:
    """Embed new and changed images into the gallery DB; prune deleted ones; recognise moved ones."""
    from clipseek.core.paths import quote_path
    from clipseek.errors import UsageError
    from clipseek.gallery.gallery import Gallery
    from clipseek.model.spec import ModelSpec

    check_format(fmt, ("table", "json"))
    lim = limits(max_pixels, max_file_mb)
    if bool(dirs) == bool(from_parquet):
        raise UsageError("give folders to index, or --from-parquet DIR (one of the two)")
    if watch and from_parquet:
        raise UsageError("--watch follows folders; it does not go with --from-parquet")
    if follow_links is not None and from_parquet:
        raise UsageError("--follow-links is about folders; it does not go with --from-parquet")
    gallery = Gallery(db, spec=ModelSpec(model, device, spec_dtype(dtype), backend))
    if model is None and not from_parquet:
        gallery = _model_when_needed(gallery)
    if from_parquet:
        summary = gallery.index_parquet(from_parquet)
    else:
        summary = _index_dirs(gallery, dirs, batch_size, workers, lim, follow_links)
    if not watch:
        gallery.close()
    report_skipped(summary.skipped, fmt)
    if fmt != "json":
        for n in getattr(summary, "notes", ()):  # videos kept with a note (cut short, header wrong, capped)
            eprint(f"note {quote_path(n.path)}: {n.reason}")
    if fmt == "json":
        print_json(summary.to_dict())
    else:
        print(f"{summary.total} images in {quote_path(gallery.db_path)}: {summary.added} added, "
              f"{summary.updated} updated, {summary.moved} moved, {summary.removed} removed, "
              f"{summary.unchanged} unchanged, {len(summary.skipped)} skipped" +
              (f" ({summary.still_skipped} more skipped before, unchanged)" if summary.still_skipped else ""),
              flush=True)
    if watch:
        from clipseek.cli.watching import watch_index

        return watch_index(gallery, dirs, poll, poll_interval, fmt)
    return 0


def _model_when_needed(gallery):
    """The gallery with its DB's own model loaded only when a file needs embedding
    (`model.lazy.LazyEncoder`): an unchanged re-index loads none. Unchanged when the DB is new."""
    import os

    from clipseek.gallery.gallery import Gallery
    from clipseek.model.lazy import LazyEncoder

    if not os.path.isfile(gallery.db_path) or os.path.getsize(gallery.db_path) == 0:
        return gallery
    fp, dim = gallery.store.fingerprint, gallery.store.model_info().get("dim")
    if fp is None or dim is None:
        return gallery
    spec = gallery.spec

    def load():  # the model exactly as Gallery resolves a DB's own model
        with Gallery(gallery.db_path, spec=spec) as resolver:
            return resolver.encoder

    gallery.close()
    return Gallery(gallery.db_path, LazyEncoder(fp, int(dim), load), spec=spec)


PHASES = ("loading the model", "scanning", "embedding", "saving the index")  # named by sync, no bar


def phase_line(name: str, n: int | None) -> str:
    """The line that names a phase of an index run as it starts."""
    if name == "embedding":
        return f"embedding {n:,} new or changed files" if n else "nothing new to embed"
    if name == "saving the index":
        return f"saving the index ({n:,} images)"
    return f"{name}..."


def _index_dirs(gallery, dirs, batch_size, workers, lim, follow_links):
    """The first pass, with each phase named on stderr (a plain line, also when piped) and a bar that
    moves per file; Ctrl-C says how many files were committed and exits 130."""
    counts = {"to_read": 0, "committed": 0}
    with ExitStack() as stack:
        advance = [lambda n=1: None]

        def on_start(total: int) -> None:
            counts["to_read"] = total
            if total:
                advance[0] = stack.enter_context(progress(total, "embedding"))

        def on_progress(n: int) -> None:
            counts["committed"] += n

        def on_phase(name: str, n: int | None):
            eprint(phase_line(name, n))
            if name not in PHASES and n:  # the pass over rows an older release left without pHash/thumbnails
                return stack.enter_context(progress(n, name))
            return None

        try:
            return gallery.index(dirs, batch_size=batch_size, workers=workers, limits=lim, on_start=on_start,
                                 on_progress=on_progress, on_read=lambda n: advance[0](n),
                                 follow_links=follow_links, on_phase=on_phase)
        except KeyboardInterrupt:
            stack.close()
            eprint(f"interrupted: {counts['committed']:,} of {counts['to_read']:,} files committed; "
                   "run the same command to go on")
            raise typer.Exit(130) from None
