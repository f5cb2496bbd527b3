"""`clipseek classify`: zero-shot classification of image files, and of videos (a timeline each)."""

from __future__ import annotations

from typing import List, Optional

import typer

from clipseek.cli.app import app
from clipseek.cli.options import device_option, finite, limits, max_file_mb_option, max_pixels_option
from clipseek.cli.output import (
    BACKEND_HELP,
    check_format,
    eprint,
    print_csv,
    print_json,
    print_table,
    progress,
    report_skipped,
)
from clipseek.core.prompts import DEFAULT_TEMPLATE


@app.command("classify")
def classify_cmd(
    paths: List[str] = typer.Argument(..., help="Image files, folders (recursive, images only) or globs; a video file "
                                    "(MP4, MOV, M4V, MKV, WebM, AVI) gets a timeline."),
    labels: Optional[str] = typer.Option(None, "--labels", "-l",
                                         help='Labels separated by commas or new lines: "cat,dog".'),
    labels_file: Optional[str] = typer.Option(None, "--labels-file", help="File with one label per line."),
    template: Optional[str] = typer.Option(None, "--template",
                                           help=f'Prompt template with one {{}} (default: "{DEFAULT_TEMPLATE}").'),
    templates: Optional[str] = typer.Option(None, "--templates", help="Template set: 'imagenet' or a file."),
    top_k: int = typer.Option(5, "--top-k", min=1, help="Labels to show per image."),
    fmt: str = typer.Option("table", "--format", "-f", help="table, json or csv."),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Hub id, checkpoint dir or 'clipseek-demo'."),
    device: str = device_option(),
    dtype: str = typer.Option("auto", "--dtype", help="auto, fp32, fp16, bf16, int8 (CPU)."),
    backend: str = typer.Option("auto", "--backend", help=BACKEND_HELP),
    crop: str = typer.Option("center", "--crop", help="center (as the checkpoint) or pad (letterbox)."),
    strict: bool = typer.Option(False, "--strict", help="Exit non-zero if any file was skipped."),
    max_pixels: Optional[int] = max_pixels_option(),
    max_file_mb: Optional[float] = max_file_mb_option(),
    sort_into: Optional[str] = typer.Option(None, "--sort-into", metavar="OUT",
                                            help="Put each image into OUT/<label>/ (a CSV undo log is "
                                                 "written first; `clipseek undo LOG` reverses it)."),
    mode: Optional[str] = typer.Option(None, "--mode", help="With --sort-into: copy (default), link or move."),
    unsure_below: Optional[float] = typer.Option(None, "--unsure-below", metavar="P", callback=finite(0, 1),
                                                 help="With --sort-into: top probability below P goes "
                                                      "to OUT/_unsure/."),
    none_below: Optional[float] = typer.Option(None, "--none-below", metavar="S", callback=finite(-1, 1),
                                               help="With --sort-into: best cosine below S (none of "
                                                    "these) goes to OUT/_unsure/."),
    dry_run: bool = typer.Option(False, "--dry-run", help="With --sort-into: show the plan, change nothing."),
    log: Optional[str] = typer.Option(None, "--log", help="With --sort-into: the undo log's path. "
                                      "Default: OUT/clipseek-sort-DATE.csv"),
) -> int:
    """Rank candidate labels for each image: CLIP shares each image's probability out among the labels
    (softmax); SigLIP scores each label on its own (sigmoid), as the model was trained. With --sort-into,
    put each image into a folder per label."""
    from clipseek.cli.transfers import check_sort_args, sort_classified
    from clipseek.core.images import collect_image_paths
    from clipseek.core.paths import quote_path
    from clipseek.core.prompts import parse_labels, resolve_templates
    from clipseek.core.video import media_kind
    from clipseek.errors import UsageError
    from clipseek.model.loader import DEFAULT_MODEL, load_model
    from clipseek.zero_shot import classify

    check_format(fmt)
    label_list = parse_labels(labels, labels_file)
    tmpl = resolve_templates(template, templates)
    lim = limits(max_pixels, max_file_mb)
    files = collect_image_paths(paths)
    if not files:
        raise UsageError("no image files found in the given paths")
    _check_sort_only(sort_into, mode=mode, unsure_below=unsure_below, none_below=none_below, log=log,
                     dry_run=dry_run or None)
    mode = mode or "copy"
    if sort_into and (video := next((f for f in files if media_kind(f) == "video"), None)):
        raise UsageError(f"--sort-into sorts images, not videos: {quote_path(video)}")
    out = check_sort_args(sort_into, paths, mode, unsure_below) if sort_into else None
    encoder = load_model(model or DEFAULT_MODEL, device=device, dtype=dtype, framing=crop, backend=backend)
    with progress(len(files), "classifying") as advance:
        result = classify(encoder, files, label_list, tmpl, top=top_k, batch_size=batch_size, expand_folders=False,
                          on_progress=advance, limits=lim)
    report_skipped(result.skipped, fmt)
    if out is not None and result.predictions:
        rc = sort_classified(result, out, mode, unsure_below, none_below, dry_run, log, fmt)
        return 1 if (strict and result.skipped) else rc
    if fmt == "json":
        print_json(result.to_dict())
    elif fmt == "csv":
        print_classified_csv(result)
    else:
        print_classified_table(result)
    n = len(result.predictions) + len(result.timelines)
    if result.skipped:
        eprint(f"{n} classified, {len(result.skipped)} skipped")
    if not n:
        eprint("clipseek: error: no image could be read")
        return 1
    return 1 if (strict and result.skipped) else 0


def _check_sort_only(sort_into: str | None, **given) -> None:
    """The options that only mean something with --sort-into are refused without it (not ignored)."""
    from clipseek.errors import UsageError

    names = ["--" + k.replace("_", "-") for k, v in given.items() if v is not None]
    if names and not sort_into:
        raise UsageError(f"{', '.join(names)} {'goes' if len(names) == 1 else 'go'} with --sort-into OUT "
                         "(classify only prints otherwise)")


def print_classified_csv(result) -> None:
    """One row per (image, rank); with videos, one per stretch too (start_s/end_s, rank 1)."""
    from clipseek.core.paths import quote_path

    rows = [[quote_path(p.path), i + 1, l, f"{s:.6f}"] for p in result.predictions for i, (l, s) in enumerate(p.ranked)]
    if not result.timelines:
        return print_csv(["path", "rank", "label", "score"], rows)
    rows = [[r[0], "", "", *r[1:]] for r in rows]
    rows += [[quote_path(t.path), f"{s.start_s:.3f}", f"{s.end_s:.3f}", 1, s.label, f"{s.score:.6f}"]
             for t in result.timelines for s in t.stretches]
    print_csv(["path", "start_s", "end_s", "rank", "label", "score"], rows)


def print_classified_table(result) -> None:
    if result.predictions or not result.timelines:
        rows = [[p.path, *[f"{l} ({s:.1%})" for l, s in p.ranked[:1]],
                 ", ".join(f"{l} {s:.1%}" for l, s in p.ranked[1:])] for p in result.predictions]
        print_table(None, ["image", "best", "next"], rows)
    if result.timelines:
        rows = [[t.path, clock(s.start_s), clock(s.end_s), f"{s.label} ({s.score:.1%})"]
                for t in result.timelines for s in t.stretches]
        print_table(None, ["video", "from", "to", "label"], rows)
    for t in result.timelines:
        for note in t.notes:
            eprint(f"note {t.path}: {note}")


def clock(seconds: float) -> str:
    """Seconds as [h:]mm:ss.s (01:23.5, 1:02:03.0)."""
    m, s = divmod(max(0.0, seconds), 60)
    h, m = divmod(int(m), 60)
    return f"{h}:{m:02d}:{s:04.1f}" if h else f"{m:02d}:{s:04.1f}"
