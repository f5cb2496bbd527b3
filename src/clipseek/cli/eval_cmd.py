"""`clipseek eval`: accuracy and friends of zero-shot classifiers (or retrieval) on a labelled dataset."""

from __future__ import annotations

from typing import List, Optional

import typer

from . import app
from .output import check_format, eprint, print_json, print_table, progress, report_skipped


@app.command("eval")
def eval_cmd(
    data: str = typer.Argument(..., help="Class folders, a .csv/.jsonl manifest, hf:NAME, or (retrieval) "
                                         "a captions .jsonl."),
    models: Optional[List[str]] = typer.Option(None, "--model", "-m", help="Model(s) to compare; repeatable."),
    template: Optional[List[str]] = typer.Option(None, "--template", help="A prompt template; repeatable."),
    templates: Optional[List[str]] = typer.Option(None, "--templates", help="'imagenet' or a file; repeatable."),
    split: Optional[str] = typer.Option(None, "--split", help="Split to evaluate (default: test/validation)."),
    top_k: int = typer.Option(5, "--top-k", min=1, help="k of the top-k accuracy in the JSON record."),
    report: Optional[str] = typer.Option(None, "--report", help="Write report.json/.md/.html to this folder."),
    fmt: str = typer.Option("table", "--format", "-f", help="table or json."),
    task: str = typer.Option("classification", "--task", help="classification or retrieval."),
    image_column: Optional[str] = typer.Option(None, "--image-column", help="Manifest/dataset image column."),
    label_column: Optional[str] = typer.Option(None, "--label-column", help="Manifest/dataset label column."),
    probe: bool = typer.Option(True, "--probe/--no-probe", help="Linear probe when there is a train split."),
    cache_dir: Optional[str] = typer.Option(None, "--cache-dir", help="Embedding cache (default ~/.cache/clipseek)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the embedding cache."),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, mps."),
    dtype: str = typer.Option("auto", "--dtype", help="auto, fp32, fp16, bf16."),
) -> int:
    """Evaluate models x prompt sets on labelled images: one row per (model, prompt set)."""
    from .. import eval_run
    from ..cache import EmbeddingCache, default_cache_dir
    from ..datasets import load_labelled, read_captions
    from ..errors import UsageError
    from ..models import DEFAULT_MODEL, load_model
    from ..report import build_document, summary_table, write_report

    check_format(fmt, ("table", "json"))
    if task not in ("classification", "retrieval"):
        raise UsageError(f"--task must be classification or retrieval, not {task!r}")
    prompt_sets = eval_run.resolve_prompt_sets(template or [], templates or [])
    cache = None if no_cache else EmbeddingCache(cache_dir or default_cache_dir())
    items_dir = str((cache.directory if cache else default_cache_dir()) / "dataset-images")
    if task == "retrieval":
        caps = read_captions(data)
        dataset, n = {"source": caps.source, "split": None, "splits": [], "n_images": len(caps.images),
                      "n_captions": len(caps.captions)}, len(caps.images)
    else:
        ds = load_labelled(data, split, image_column, label_column, items_dir)
        dataset, n = {**ds.describe(), "warnings": ds.warnings}, len(ds)
        for w in ds.warnings:
            eprint(f"warning: {w}")
        load_split = lambda s: load_labelled(data, s, image_column, label_column, items_dir)  # noqa: E731
    rows, skipped = [], []
    for name in models or [DEFAULT_MODEL]:
        encoder = load_model(name, device=device, dtype=dtype)
        with progress(n, f"embedding ({name})") as advance:
            if task == "retrieval":
                row, sk = eval_run.evaluate_retrieval(encoder, name, caps, cache, batch_size, advance)
                rows.append(row)
            else:
                new, sk = eval_run.evaluate_model(encoder, name, ds, prompt_sets, load_split, cache, top_k,
                                                  probe, batch_size, advance)
                rows += new
        skipped += sk
        del encoder
    doc = build_document(task, dataset, rows, skipped)
    report_skipped(_unique(skipped), fmt)
    if report:
        eprint(f"report written to {write_report(doc, report)}")
    if fmt == "json":
        print_json(doc)
    else:
        print_table(None, *summary_table(doc))
    if not rows:
        eprint("clipseek: error: no image could be read")
        return 1
    return 0


def _unique(skipped):
    seen = set()
    return [s for s in skipped if not (s.path in seen or seen.add(s.path))]
