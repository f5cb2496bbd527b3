"""`clipseek classify`: zero-shot classification of image files."""

from __future__ import annotations

from typing import List, Optional

import typer

from clipseek.cli.app import app
from clipseek.cli.options import limits, max_file_mb_option, max_pixels_option
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
    paths: List[str] = typer.Argument(..., help="Image files, folders (recursive) or globs."),
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
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, mps."),
    dtype: str = typer.Option("auto", "--dtype", help="auto, fp32, fp16, bf16."),
    crop: str = typer.Option("center", "--crop", help="center (as the checkpoint) or pad (letterbox)."),
    strict: bool = typer.Option(False, "--strict", help="Exit non-zero if any file was skipped."),
    max_pixels: Optional[int] = max_pixels_option(),
    max_file_mb: Optional[float] = max_file_mb_option(),
) -> int:
    """Rank candidate labels for each image (softmax over logit_scale * cosine)."""
    from clipseek.core.images import collect_image_paths
    from clipseek.core.paths import quote_path
    from clipseek.core.prompts import parse_labels, resolve_templates
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
    encoder = load_model(model or DEFAULT_MODEL, device=device, dtype=dtype, framing=crop)
    with progress(len(files), "classifying") as advance:
        result = classify(encoder, files, label_list, tmpl, top=top_k, batch_size=batch_size,
                          on_progress=advance, limits=lim)
    report_skipped(result.skipped, fmt)
    if fmt == "json":
        print_json(result.to_dict())
    elif fmt == "csv":
        print_csv(["path", "rank", "label", "score"],
                  [[quote_path(p.path), i + 1, l, f"{s:.6f}"] for p in result.predictions for i, (l, s) in enumerate(p.ranked)])
    else:
        rows = [[p.path, *[f"{l} ({s:.1%})" for l, s in p.ranked[:1]],
                 ", ".join(f"{l} {s:.1%}" for l, s in p.ranked[1:])] for p in result.predictions]
        print_table(None, ["image", "best", "next"], rows)
    if result.skipped:
        eprint(f"{len(result.predictions)} classified, {len(result.skipped)} skipped")
    if not result.predictions:
        eprint("clipseek: error: no image could be read")
        return 1
    return 1 if (strict and result.skipped) else 0
