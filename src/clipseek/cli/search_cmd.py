"""`clipseek search`: text or image queries over a gallery, with query arithmetic, filters and
`--relevant`."""

from __future__ import annotations

from typing import List, Optional

import typer

from clipseek.cli.app import app
from clipseek.cli.options import (
    DB_HELP,
    backend_option,
    device_option,
    finite,
    format_option,
    limits,
    max_file_mb_option,
    max_pixels_option,
    model_option,
)
from clipseek.cli.output import (
    check_format,
    eprint,
    print_csv,
    print_json,
    print_paths,
    print_table,
)


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
    threshold: Optional[float] = typer.Option(None, "--threshold", callback=finite(-1, 1),
                                             help="Only results with cosine >= S (-1 to 1)."),
    folders: Optional[List[str]] = typer.Option(None, "--in", metavar="FOLDER",
                                                help="Only images under this folder (repeatable)."),
    after: Optional[str] = typer.Option(None, "--after", metavar="DATE",
                                        help="Only photos taken on or after DATE (EXIF, else file time)."),
    before: Optional[str] = typer.Option(None, "--before", metavar="DATE", help="Only photos taken before DATE."),
    orientation: Optional[str] = typer.Option(None, "--orientation", help="landscape, portrait or square."),
    min_size: Optional[str] = typer.Option(None, "--min-size", metavar="WxH", help="At least this many pixels."),
    ext: Optional[str] = typer.Option(None, "--ext", metavar="EXTS", help="File types, e.g. jpg,png."),
    media: Optional[str] = typer.Option(None, "--media", metavar="photo|video",
                                        help="Only photos or only videos (default: both, ranked together; "
                                             "a video by its best moment)."),
    min_duration: Optional[float] = typer.Option(None, "--min-duration", metavar="SECONDS",
                                                 help="Only videos at least this long."),
    max_duration: Optional[float] = typer.Option(None, "--max-duration", metavar="SECONDS",
                                                 help="Only videos at most this long."),
    fmt: str = format_option("table", "json", "csv", "paths"),
    print0: bool = typer.Option(False, "--print0", help="With --format paths: end each name with NUL "
                                "instead of a new line, its bytes as they are (for xargs -0)."),
    model: Optional[str] = model_option("Default: the model the DB was built with."),
    device: str = device_option(),
    int8_text: bool = typer.Option(False, "--int8-text",
                                   help="Quantize the text tower to int8 on CPU (~3x faster query)."),
    max_pixels: Optional[int] = max_pixels_option(),
    max_file_mb: Optional[float] = max_file_mb_option(),
    backend: str = backend_option(),
) -> int:
    """Find the images most similar to a text query (or to an example image), optionally adding and
    subtracting meanings, among the images that pass the filters."""
    from clipseek.errors import UsageError
    from clipseek.gallery.gallery import Gallery
    from clipseek.cli.classify_cmd import clock
    from clipseek.gallery.query import Filter, query_terms, relevance_note

    if print0 and fmt == "table":
        fmt = "paths"
    check_format(fmt, ("table", "json", "csv", "paths"))
    if print0 and fmt != "paths":
        raise UsageError("--print0 goes with --format paths")
    lim = limits(max_pixels, max_file_mb)
    where = Filter.parse(folders or (), after=after, before=before, orientation=orientation,
                         min_size=min_size, ext=ext, media=media, min_duration=min_duration,
                         max_duration=max_duration)
    query_terms(query, image, add, subtract)  # bad terms fail here, before a model is loaded
    with Gallery(db, model=model, device=device, int8_text=int8_text, backend=backend) as gallery:
        _check_folders(gallery, where)  # before the model loads
        results = gallery.search(text=query, image=image, k=top_k, threshold=threshold, add=add or (),
                                 subtract=subtract or (), where=where, relevant=relevant, limits=lim)
        passing = gallery.count(where) if where and not results else None
        if relevant and results and results[0].relevance is None:
            eprint(relevance_note(gallery.count()))
    if fmt == "json":
        print_json({"query": query, "image": image, "add": add or [], "subtract": subtract or [],
                    "filter": where.describe() if where else None, "relevant": relevant,
                    "results": [r.to_dict() for r in results]})
    elif fmt == "paths":
        print_paths([r.path for r in results], print0)
    elif fmt == "csv":
        print_csv(["path", "score", "relevance", "relevant", "width", "height"],
                  [[r.path, f"{r.score:.6f}", "" if r.relevance is None else f"{r.relevance:.4f}",
                    int(bool(r.relevant)), r.width, r.height] for r in results])
    else:
        print_table(None, ["path", "score", "relevance", "size"],
                    [[r.path + (f" @ {clock(r.time_s)}" if r.time_s is not None else ""), f"{r.score:.4f}",
                      "-" if r.relevance is None else
                      f"{r.relevance:.2f}" + (" *" if r.relevant else ""), f"{r.width}x{r.height}"]
                     for r in results])
    if passing == 0:
        eprint(f"no image passes the filter ({where.describe()})")
    elif not results:
        eprint("no results" + (f" with score >= {threshold}" if threshold is not None else "")
               + (" that stand out as relevant" if relevant else ""))
    return 0


def _check_folders(gallery, where) -> None:
    """Each --in folder must hold an image of the gallery: else one line naming the gallery's folders
    (a typo is not "no image passes the filter")."""
    import dataclasses

    from clipseek.core.paths import quote_path
    from clipseek.errors import UsageError
    from clipseek.gallery.roots import gallery_roots

    for folder in where.folders if where else ():
        if not gallery.count(dataclasses.replace(type(where)(), folders=(folder,))):
            roots = ", ".join(quote_path(r) for r in gallery_roots(gallery.store)) or "none recorded"
            raise UsageError(f"--in {quote_path(folder)}: no image of this gallery is in that folder; "
                             f"the gallery's folders are {roots}")
