"""`clipseek classify`: zero-shot classification of image files, and of videos (a timeline each)."""

from __future__ import annotations

from typing import List, Optional

import typer

from clipseek.cli.app import app
from clipseek.cli.fit_cmd import (
    classifier_option,
    coverage_option,
    examples_option,
    false_alarm_option,
    method_option,
)
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
from clipseek.cli.output import (
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
    fmt: str = format_option("table", "json", "csv"),
    batch_size: int = batch_size_option(),
    model: Optional[str] = model_option(),
    device: str = device_option(),
    dtype: str = dtype_option(),
    backend: str = backend_option(),
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
    examples: Optional[str] = examples_option(),
    classifier: Optional[str] = classifier_option(),
    method: str = method_option(),
    coverage: Optional[float] = coverage_option(),
    false_alarm: Optional[float] = false_alarm_option(),
    cache_dir: Optional[str] = typer.Option(None, "--cache-dir", help="With --examples: the embedding "
                                            "cache of the examples (default ~/.cache/clipseek)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="With --examples: do not use the cache."),
) -> int:
    """Rank candidate labels for each image: CLIP shares each image's probability out among the labels
    (softmax); SigLIP scores each label on its own (sigmoid), as the model was trained. With --sort-into,
    put each image into a folder per label. With --examples DIR or --classifier FILE, classify by
    example pictures instead (see `clipseek fit`): --coverage gives each image a set of labels, and
    --sort-into sends an image whose set is not one label to OUT/_unsure/, an unusual one to OUT/_unusual/."""
    from clipseek.cli.fit_cmd import cache_for, check_example_options, optional_labels
    from clipseek.cli.transfers import check_sort_args, sort_classified
    from clipseek.core.images import collect_image_paths
    from clipseek.core.paths import quote_path
    from clipseek.core.prompts import parse_labels, resolve_templates
    from clipseek.core.video import media_kind
    from clipseek.errors import UsageError
    from clipseek.fewshot.fit import classifier_for
    from clipseek.model.loader import DEFAULT_MODEL, load_model
    from clipseek.zero_shot import classify, classify_fitted

    check_format(fmt)
    by_example = examples is not None or classifier is not None
    check_example_options(by_example, method, coverage, false_alarm)
    label_list = optional_labels(labels, labels_file) if by_example else parse_labels(labels, labels_file)
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
    if by_example and none_below is not None:
        raise UsageError("--none-below is a zero-shot threshold; with example pictures use --false-alarm "
                         "(or --coverage)")
    out = check_sort_args(sort_into, paths, mode, unsure_below) if sort_into else None
    encoder = load_model(model or DEFAULT_MODEL, device=device, dtype=dtype, framing=crop, backend=backend)
    if by_example:
        clf, example_skips = classifier_for(encoder, examples, classifier, labels=label_list, templates=tmpl,
                                            method=method, coverage=coverage, false_alarm=false_alarm,
                                            cache=None if classifier else cache_for(cache_dir, no_cache),
                                            batch_size=batch_size, limits=lim)
        report_skipped(example_skips, fmt)
    with progress(len(files), "classifying") as advance:
        if by_example:
            result = classify_fitted(encoder, files, clf, top=top_k, batch_size=batch_size,
                                     on_progress=advance, limits=lim)
        else:
            result = classify(encoder, files, label_list, tmpl, top=top_k, batch_size=batch_size,
                              expand_folders=False, on_progress=advance, limits=lim)
    report_skipped(result.skipped, fmt)
    if out is not None and result.predictions:
        rc = sort_classified(result, out, mode, unsure_below, none_below, dry_run, log, fmt)
        return 1 if (strict and result.skipped) else rc
    if fmt == "json":
        print_json(result.to_dict())
    elif fmt == "csv":
        print_csv(*csv_rows(result)) if result.classifier else print_classified_csv(result)
    else:
        print_table(None, *table_rows(result)) if result.classifier else print_classified_table(result)
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


def table_rows(result) -> tuple[list[str], list[list[str]]]:
    """The table: image, best, the conformal set (a fitted classifier with coverage), next, unusual."""
    first = result.predictions[0] if result.predictions else None
    has_set, has_anomaly = first is not None and first.set is not None, first is not None and first.anomaly is not None
    if result.classifier and result.classifier["kind"] == "one-class":
        threshold = result.classifier["anomaly"]["threshold"]
        return (["image", f"verdict (distance to the examples; unusual above {threshold:.3f})"],
                [[p.path, f"{'unusual' if p.unusual else 'normal'} ({p.anomaly:.3f})"] for p in result.predictions])
    header = ["image", "best"]
    if has_set:
        header.append(f"set ({result.classifier['conformal']['coverage']:.0%})")
    header.append("next")
    if has_anomaly:
        header.append("unusual (distance)")
    rows = []
    for p in result.predictions:
        row = [p.path, f"{p.ranked[0][0]} ({p.ranked[0][1]:.1%})"]
        if has_set:
            row.append("{" + ", ".join(p.set) + "}")
        row.append(", ".join(f"{l} {s:.1%}" for l, s in p.ranked[1:]))
        if has_anomaly:
            row.append(f"{'yes' if p.unusual else 'no'} ({p.anomaly:.3f})")
        rows.append(row)
    return header, rows


def csv_rows(result) -> tuple[list[str], list[list]]:
    """One row per (image, rank); a fitted classifier adds in_set and the image's unusual/anomaly."""
    from clipseek.core.paths import quote_path

    first = result.predictions[0] if result.predictions else None
    extra = [] if first is None or result.classifier is None else \
        (["in_set"] if first.set is not None else []) + (["unusual", "anomaly"] if first.anomaly is not None else [])
    rows = []
    for p in result.predictions:
        for i, (l, s) in enumerate(p.ranked):
            row = [quote_path(p.path), i + 1, l, f"{s:.6f}"]
            if "in_set" in extra:
                row.append(int(l in p.set))
            if "unusual" in extra:
                row += [int(p.unusual), f"{p.anomaly:.6f}"]
            rows.append(row)
    return ["path", "rank", "label", "score"] + extra, rows
