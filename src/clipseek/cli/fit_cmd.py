"""`clipseek fit`: example pictures -> a classifier file; and the few-shot options that `classify`,
`eval` and `serve` share (`--examples`, `--classifier`, `--method`, `--coverage`, `--false-alarm`)."""

from __future__ import annotations

from typing import Optional

import typer

from clipseek.cli.app import app
from clipseek.cli.options import (
    backend_option,
    batch_size_option,
    device_option,
    dtype_option,
    format_option,
    limits,
    max_file_mb_option,
    max_pixels_option,
    model_option,
)
from clipseek.cli.output import check_format, eprint, print_json, print_table, progress, report_skipped

METHOD_HELP = ("auto (the best 5-fold accuracy on the examples), text, prototype, tip (Tip-Adapter: text "
               "blended with the examples) or logistic (a head started at the text classifier).")


def examples_option():
    return typer.Option(None, "--examples", metavar="DIR",
                        help="Example pictures, a folder per class (or a manifest): fit a classifier on "
                             "them first (see `clipseek fit`).")


def classifier_option():
    return typer.Option(None, "--classifier", metavar="FILE", help="A classifier made by `clipseek fit`.")


def method_option():
    return typer.Option("auto", "--method", help="With --examples: " + METHOD_HELP)


def coverage_option():
    return typer.Option(None, "--coverage", metavar="P",
                        help="With --examples: a set of labels per image that holds the true one with "
                             "probability >= P (conformal, calibrated on held-out examples).")


def false_alarm_option():
    return typer.Option(None, "--false-alarm", metavar="RATE",
                        help="With --examples: flag images unlike the examples, at most RATE of normal "
                             "ones (default 0.05 with one class of examples).")


def check_example_options(by_example: bool, method: str, coverage: float | None, false_alarm: float | None) -> None:
    """--method, --coverage and --false-alarm mean nothing without --examples or --classifier."""
    from clipseek.errors import UsageError

    given = [o for o, v in (("--method", method != "auto"), ("--coverage", coverage is not None),
                            ("--false-alarm", false_alarm is not None)) if v]
    if given and not by_example:
        raise UsageError(f"{given[0]} needs --examples DIR or --classifier FILE")


def optional_labels(labels: str | None, labels_file: str | None) -> list[str]:
    from clipseek.core.prompts import parse_labels

    return parse_labels(labels, labels_file) if labels or labels_file else []


def cache_for(cache_dir: str | None, no_cache: bool):
    from clipseek.embed.cache import EmbeddingCache

    return None if no_cache else EmbeddingCache(cache_dir)


def fitted_for_serve(examples: str | None, classifier: str | None, method: str, coverage: float | None,
                     false_alarm: float | None):
    """What `serve` hands the server: a function that fits or loads the classifier with the server's
    own model once it is loaded (a file fitted with another model is refused there)."""
    def make(encoder):
        from clipseek.fewshot.fit import classifier_for

        clf, skipped = classifier_for(encoder, examples, classifier, method=method, coverage=coverage,
                                      false_alarm=false_alarm, cache=None if classifier else cache_for(None, False))
        report_skipped(skipped, "table")
        return clf
    return make


def _settings_text(settings: dict) -> str:
    return "".join(f", {k}={v:g}" for k, v in settings.items()
                   if k != "iterations" and isinstance(v, (int, float)) and not isinstance(v, bool))


def _classes_text(d: dict, shown: int = 8) -> str:
    names = [c["name"] for c in d["classes"]]
    counts = d.get("examples_per_class", {})
    named_only = [n for n in names if not counts.get(n)]
    pictures_only = [c["name"] for c in d["classes"] if not c["text"]]
    text = f"{len(names)}: {', '.join(names[:shown])}{', ...' if len(names) > shown else ''}"
    for what, group in (("known only by name", named_only), ("only by pictures", pictures_only)):
        if group:
            text += f"; {len(group)} {what}: {', '.join(group[:shown])}{', ...' if len(group) > shown else ''}"
    return text


def summary_rows(d: dict) -> list[list[str]]:
    """The fitted classifier in a few lines: what was chosen and why, and its thresholds."""
    rows = [["classes", _classes_text(d)],
            ["examples", f"{d['n_examples']} (each scored against the others to set the threshold)"
             if d["kind"] == "one-class" else
             f"{d['n_examples']} ({d['n_fitting']} fitting, {d['n_calibration']} calibration)"],
            ["method", d["method"] + _settings_text(d["settings"])],
            ["why", d["selection"].get("why", "")]]
    for m, v in d["selection"].get("methods", {}).items():
        detail = f" (K-fold {v['kfold_accuracy']:.1%}, classes left out {v['name_only_accuracy']:.1%})" \
            if "name_only_accuracy" in v else ""
        rows.append([f"  {m}", f"{v['accuracy']:.1%}{detail}" + _settings_text(v["settings"])])
    for m, why in d["selection"].get("not_applicable", {}).items():
        rows.append([f"  {m}", f"not applicable: {why}"])
    if d["kind"] != "one-class":
        rows.append(["temperature", f"{d['temperature']:.3f}"])
    if d["conformal"]:
        c = d["conformal"]
        rows.append(["coverage", f"{c['coverage']:g}: set = labels with score <= {c['threshold']:.4f} "
                                 f"(RAPS lam={c['lam']:g}, k_reg={c['k_reg']}; {c['n_calibration']} held out)"])
    if d["anomaly"]:
        a = d["anomaly"]
        rows.append(["unusual", f"distance to the {a['neighbours']} nearest examples > {a['threshold']:.4f} "
                                f"(false-alarm rate <= {a['false_alarm']:g}; {a['n_reference']} examples)"])
    return rows


@app.command("fit")
def fit_cmd(
    examples: str = typer.Argument(..., help="Example pictures: a folder per class (DIR/<class>/*.jpg; "
                                             "with train/val split folders, train fits and val calibrates), "
                                             "a .csv/.jsonl manifest or hf:NAME."),
    out: str = typer.Option(..., "--out", "-o", metavar="FILE", help="Where to write the classifier (.npz)."),
    method: str = typer.Option("auto", "--method", help=METHOD_HELP),
    labels: Optional[str] = typer.Option(None, "--labels", "-l",
                                         help="More classes known only by name, or label texts of example "
                                              "classes: \"cat,dog\"."),
    labels_file: Optional[str] = typer.Option(None, "--labels-file", help="File with one label per line."),
    template: Optional[str] = typer.Option(None, "--template", help="Prompt template with one {}."),
    templates: Optional[str] = typer.Option(None, "--templates", help="Template set: 'imagenet' or a file."),
    coverage: Optional[float] = typer.Option(None, "--coverage", metavar="P",
                                             help="Calibrate conformal label sets holding the true label "
                                                  "with probability >= P (e.g. 0.9)."),
    false_alarm: Optional[float] = false_alarm_option(),
    seed: int = typer.Option(0, "--seed", help="Seed of the folds and the calibration hold-out."),
    model: Optional[str] = model_option(),
    cache_dir: Optional[str] = typer.Option(None, "--cache-dir", help="Embedding cache (default ~/.cache/clipseek)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the embedding cache."),
    fmt: str = format_option("table", "json"),
    batch_size: int = batch_size_option(),
    device: str = device_option(),
    dtype: str = dtype_option(),
    backend: str = backend_option(),
    max_pixels: Optional[int] = max_pixels_option(),
    max_file_mb: Optional[float] = max_file_mb_option(),
) -> int:
    """Teach a classifier by example: fit it on a few labelled pictures per class (one class: flag what
    is unlike them) and save it for `classify/eval/serve --classifier FILE`."""
    import os

    from clipseek.core.paths import quote_path
    from clipseek.core.prompts import resolve_templates
    from clipseek.fewshot.classifier_file import save_classifier
    from clipseek.fewshot.fit import fit_examples
    from clipseek.model.loader import DEFAULT_MODEL, load_model

    check_format(fmt, ("table", "json"))
    label_list = optional_labels(labels, labels_file)
    tmpl = resolve_templates(template, templates)
    cache = cache_for(cache_dir, no_cache)
    encoder = load_model(model or DEFAULT_MODEL, device=device, dtype=dtype, backend=backend)
    with progress(None, "embedding examples") as advance:
        clf, skipped = fit_examples(encoder, examples, label_list, tmpl, method, coverage, false_alarm, cache,
                                    batch_size, advance, limits(max_pixels, max_file_mb), seed)
    save_classifier(clf, out)
    report_skipped(skipped, fmt)
    d = clf.describe()
    if fmt == "json":
        print_json({"classifier": os.path.abspath(out), **d,
                    "skipped": [{"path": s.path, "reason": s.reason} for s in skipped]})
    else:
        print_table(None, ["", "fitted"], summary_rows(d))
    eprint(f"classifier written to {quote_path(out)} ({os.path.getsize(out) / 1024:,.1f} KB)")
    return 0
