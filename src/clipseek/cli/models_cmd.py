"""`clipseek models`: the recommended checkpoints, how to pick one, and which are already downloaded."""

from __future__ import annotations

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
    from clipseek.model.catalog import TABLE_HEADER, is_cached, load_catalog, table_rows

    check_format(fmt, ("table", "json"))
    catalog = load_catalog()
    cached = [is_cached(e.hub_id, cache_dir) for e in catalog.entries]
    picks = catalog.picks()
    if fmt == "json":
        print_json({"models": [{**e.to_dict(), "cached": c} for e, c in zip(catalog.entries, cached)],
                    "picks": {k: e.hub_id if e else None for k, e in picks.items()},
                    "speed": catalog.speed, "top1_source_url": catalog.source_url})
        return 0
    rows = [row + ["yes" if c else ""] for row, c in zip(table_rows(catalog), cached)]
    print_table("Recommended checkpoints", TABLE_HEADER + ["cached"], rows)
    print("How to pick:")
    for key, text in PICK_TEXT.items():
        if picks[key] is not None:
            print(f"  {text}: {picks[key].hub_id}")
    print(f"ImageNet top-1: published zero-shot figures, from open_clip's results table ({catalog.source_url}); "
          "--format json names the row. –: no figure verified.")
    if catalog.speed:
        print(f"CPU speed: images per CPU-second relative to openai/clip-vit-base-patch32, measured on random "
              f"weights of each architecture ({catalog.speed.get('machine')}, {catalog.speed.get('measured')}).")
    print("hf-hub:ORG/NAME: an open_clip-format checkpoint; SigLIP models score each label on its own (sigmoid).")
    return 0
