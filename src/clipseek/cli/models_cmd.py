"""`clipseek models`: the recommended checkpoints, how to pick one, and which are already downloaded."""

from __future__ import annotations

import shutil
import textwrap
from typing import Optional

import typer

from clipseek.cli.app import app
from clipseek.cli.options import format_option
from clipseek.cli.output import check_format, print_json, print_table

PICK_TEXT = {
    "fastest": "fastest on CPU",
    "best_on_cpu": "best on CPU (the most accurate of those at most 4x slower than ViT-B/32)",
    "best_overall": "best overall (published ImageNet top-1)",
    "multilingual": "multilingual (queries and labels in many languages)",
}


@app.command("models")
def models_cmd(
    fmt: str = format_option("table", "json"),
    cache_dir: Optional[str] = typer.Option(None, "--cache-dir",
                                            help="Hugging Face hub cache to look in (default: as huggingface_hub)."),
) -> int:
    """Recommended checkpoints: size, published zero-shot ImageNet top-1 (with its source), CPU speed
    measured on random weights of each architecture, and which are in the local Hugging Face cache."""
    from clipseek.model.catalog import TABLE_HEADER, demo_entry, demo_row, is_cached, load_catalog, table_rows

    check_format(fmt, ("table", "json"))
    catalog = load_catalog()
    cached = [is_cached(e.hub_id, cache_dir) for e in catalog.entries]
    picks = catalog.picks()
    if fmt == "json":
        print_json({"models": [{**e.to_dict(), "cached": c} for e, c in zip(catalog.entries, cached)],
                    "bundled": [{**demo_entry().to_dict(), "cached": True}],
                    "picks": {k: e.hub_id if e else None for k, e in picks.items()},
                    "speed": catalog.speed, "top1_source_url": catalog.source_url})
        return 0
    header = TABLE_HEADER + ["cached"]
    rows = [demo_row()] + [row + ["yes" if c else ""] for row, c in zip(table_rows(catalog), cached)]
    width = shutil.get_terminal_size((100, 24)).columns
    if sum(max(len(str(x)) for x in col) + 3 for col in zip(header, *rows)) + 1 <= width:
        print_table("Recommended checkpoints", header, rows)
    else:
        _print_compact(header, rows, width)
    print("How to pick:")
    for key, text in [("offline", "offline, no download (small, trained on shapes: to try clipseek)")] \
            + list(PICK_TEXT.items()):
        hub_id = "clipseek-demo" if key == "offline" else picks[key].hub_id if picks[key] else None
        if hub_id is not None:
            line = f"  {text}: {hub_id}"
            print(line if len(line) <= width else f"  {text}:\n    {hub_id}")
    notes = ["ImageNet top-1: published zero-shot figures, from open_clip's results table (--format json "
             "names the row; –: no figure verified):", catalog.source_url]
    if catalog.speed:
        notes.append(f"CPU speed: images per CPU-second relative to openai/clip-vit-base-patch32, measured on "
                     f"random weights of each architecture ({catalog.speed.get('machine')}, "
                     f"{catalog.speed.get('measured')}).")
    notes.append("hf-hub:ORG/NAME: an open_clip-format checkpoint; SigLIP models score each label on its own "
                 "(sigmoid).")
    for note in notes:
        print(textwrap.fill(note, width=max(width, 40), break_long_words=False, break_on_hyphens=False))
    return 0


SHORT = {"ImageNet top-1": "top-1", "CPU speed": "CPU", "images/s/core": "img/s", "multilingual": "multi",
         "model (--model)": "model (--model)"}
PRIORITY = ["model (--model)", "ImageNet top-1", "CPU speed", "params", "cached", "multilingual", "dim",
            "input", "family", "images/s/core"]


def _print_compact(header: list[str], rows: list[list[str]], width: int) -> None:
    """The table in plain columns for a narrow terminal: the columns that fit, most useful first, in
    their usual order, under short names (--format json has them all)."""
    cols: list[int] = []
    for name in PRIORITY:
        i = header.index(name)
        trial = sorted(cols + [i])
        widths = [max(len(SHORT.get(header[j], header[j])), *(len(r[j]) for r in rows)) for j in trial]
        if not cols or sum(widths) + 2 * (len(trial) - 1) <= width:
            cols = trial
    widths = [max(len(SHORT.get(header[j], header[j])), *(len(r[j]) for r in rows)) for j in cols]

    def line(cells):
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    print(line([SHORT.get(header[j], header[j]) for j in cols]))
    print(line(["-" * w for w in widths]))
    for r in rows:
        print(line([r[j] for j in cols]))
    left = [SHORT.get(header[j], header[j]) for j in range(len(header)) if j not in cols]
    if left:
        print(textwrap.fill(f"(not shown at this width: {', '.join(left)}; see --format json or a wider "
                            "terminal)", width=max(width, 40)))
