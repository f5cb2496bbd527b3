"""`clipseek eval`: accuracy and friends of zero-shot classifiers (or retrieval) on a labelled dataset."""

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
    format_option,
    limits,
    max_file_mb_option,
    max_pixels_option,
)
from clipseek.cli.output import (
    check_format,
    eprint,
    print_json,
    print_table,
    progress,
    report_skipped,
)


@app.command("eval")
def eval_cmd(
    data: str = typer.Argument(..., help="Class folders, a .csv/.jsonl manifest, hf:NAME, or (retrieval) "
                                         "a captions .jsonl."),
    models: Optional[List[str]] = typer.Option(None, "--model", "-m", help="Model(s) to compare; repeatable."),
    template: Optional[List[str]] = typer.Option(None, "--template", help="A prompt template; repeatable."),
    templates: Optional[List[str]] = typer.Option(None, "--templates", help="'imagenet' or a file; repeatable."),
    split: Optional[str] = typer.Option(None, "--split", help="Split to evaluate (default: test/validation)."),
    top_k: int = typer.Option(5, "--top-k", min=1, help="k of the top-k accuracy column."),
    report: Optional[str] = typer.Option(None, "--report", help="Write report.json/.md/.html to this folder."),
    fmt: str = format_option("table", "json"),
    task: str = typer.Option("classification", "--task", help="classification or retrieval."),
    image_column: Optional[str] = typer.Option(None, "--image-column", help="Manifest/dataset image column."),
    label_column: Optional[str] = typer.Option(None, "--label-column", help="Manifest/dataset label column."),
    probe: bool = typer.Option(True, "--probe/--no-probe", help="Linear probe when there is a train split."),
    cache_dir: Optional[str] = typer.Option(None, "--cache-dir", help="Embedding cache (default ~/.cache/clipseek)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the embedding cache."),
    batch_size: int = batch_size_option(),
    device: str = device_option(),
    dtype: str = dtype_option(),
    max_pixels: Optional[int] = max_pixels_option(),
    max_file_mb: Optional[float] = max_file_mb_option(),
    backend: str = backend_option(),
    examples: Optional[str] = examples_option(),
    classifier: Optional[str] = classifier_option(),
    method: str = method_option(),
    coverage: Optional[float] = coverage_option(),
    false_alarm: Optional[float] = false_alarm_option(),
    shots: Optional[str] = typer.Option(None, "--shots", metavar="K,K,...",
                                        help="Few-shot curves: draw K examples per class from the train "
                                             "split, fit every method, score it here (e.g. 1,2,4,8,16)."),
    seeds: int = typer.Option(3, "--seeds", min=1, help="With --shots: draws per shot count."),
) -> int:
    """Evaluate models x prompt sets on labelled images: one row per (model, prompt set). With
    --examples/--classifier, a row for a classifier taught by example pictures; with --shots, few-shot
    curves of every method beside zero-shot."""
    from clipseek.core.paths import quote_path
    from clipseek.embed.cache import EmbeddingCache
    from clipseek.errors import Skipped, UsageError
    from clipseek.evaluation.fewshot_eval import FewShotOptions, parse_shots
    from clipseek.evaluation.report import curve_table, summary_table, write_report
    from clipseek.evaluation.run import resolve_prompt_sets, run_eval
    from clipseek.model.loader import DEFAULT_MODEL, load_model

    check_format(fmt, ("table", "json"))
    prompt_sets = resolve_prompt_sets(template or [], templates or [])
    lim = limits(max_pixels, max_file_mb)
    cache = None if no_cache else EmbeddingCache(cache_dir)  # None: the default cache folder
    fewshot = None
    if examples or classifier or shots or coverage is not None or false_alarm is not None:
        fewshot = FewShotOptions(examples, classifier, method, coverage, false_alarm,
                                 parse_shots(shots) if shots else (), seeds)
        if not (fewshot.scores_a_classifier or fewshot.shots):
            raise UsageError("--coverage and --false-alarm need --examples DIR, --classifier FILE or --shots")

    def loader(m):
        return load_model(m, device=device, dtype=dtype, backend=backend)

    doc = run_eval(data, models or [DEFAULT_MODEL], loader,
                   prompt_sets, task, split, image_column, label_column, cache, top_k, probe, batch_size,
                   progress=progress, on_warning=lambda w: eprint(f"warning: {w}"), limits=lim,
                   fewshot=fewshot)
    report_skipped([Skipped(s["path"], s["reason"]) for s in doc["skipped"]], fmt)
    if report:
        eprint(f"report written to {quote_path(str(write_report(doc, report)))}")
    if fmt == "json":
        print_json(doc)
    else:
        print_table(None, *summary_table(doc))
        if curve_table(doc):
            print_table("few-shot top-1 (coverage · mean set size), mean of the draws", *curve_table(doc))
    if not doc["rows"]:
        eprint("clipseek: error: no image could be read")
        return 1
    return 0
