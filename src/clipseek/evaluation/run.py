"""Run an evaluation: a dataset + models (loaded one at a time by the caller's loader) + prompt sets ->
the report document (plain dicts). `evaluation.evaluate.evaluate` is the one-model call on top of it.

The three steps stay separate (as in CLIP_benchmark): embed the images once (through the cache), build a
classifier per prompt set (text side only), score it with the pure functions of `evaluation.metrics`.
The caller decides where the document goes (table, JSON, report directory).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import numpy as np

from clipseek.core.images import DEFAULT_LIMITS, ImageLimits
from clipseek.core.prompts import build_classifier
from clipseek.core.scores import logits, probabilities, scoring
from clipseek.data.hf import default_materialize_dir
from clipseek.data.labelled import CALIBRATION_SPLITS, CaptionDataset, LabelledDataset
from clipseek.embed.cache import EmbeddingCache, embed_cached
from clipseek.errors import Skipped, UsageError
from clipseek.evaluation import metrics as ev
from clipseek.evaluation.fewshot_eval import FewShotOptions

if TYPE_CHECKING:
    from clipseek.model.base import Encoder
    from clipseek.model.fingerprint import Fingerprint

N_MISTAKES = 12
log = logging.getLogger(__name__)


@dataclass
class EmbeddedSplit:
    dataset: LabelledDataset
    paths: list[str]
    vectors: np.ndarray          # (N, D) for the readable images, aligned with paths and y
    y: np.ndarray
    skipped: list[Skipped] = field(default_factory=list)


def embed_split(encoder: Encoder, ds: LabelledDataset, cache: EmbeddingCache | None = None, batch_size: int = 32,
                workers: int | None = None, on_progress: Callable[[int], None] | None = None,
                limits: ImageLimits = DEFAULT_LIMITS) -> EmbeddedSplit:
    emb = embed_cached(encoder, ds.paths, cache, batch_size=batch_size, workers=workers,
                       on_progress=on_progress, limits=limits)
    label_of = dict(zip(ds.paths, ds.labels))
    return EmbeddedSplit(ds, emb.paths, emb.vectors, np.array([label_of[p] for p in emb.paths], np.int64),
                         emb.skipped)


def companion_splits(ds: LabelledDataset) -> tuple[str | None, str | None]:
    """(train split for the linear probe, split to fit temperature/threshold on), both != ds.split."""
    others = [s for s in ds.splits if s != ds.split]
    train = "train" if "train" in others else None
    calib = next((s for s in CALIBRATION_SPLITS if s in others), None)
    return train, calib


def _mistakes(emb: EmbeddedSplit, probs: np.ndarray, n: int = N_MISTAKES) -> list[dict]:
    pred = probs.argmax(axis=1)
    conf = probs.max(axis=1)
    wrong = np.where(pred != emb.y)[0]
    order = wrong[np.argsort(-conf[wrong], kind="stable")][:n]
    classes = emb.dataset.classes
    return [{"path": emb.paths[i], "true": classes[emb.y[i]], "predicted": classes[pred[i]],
             "confidence": float(conf[i])} for i in order]


def _record(kind: str, model: str, fingerprint: Fingerprint, prompt_set: str, emb: EmbeddedSplit,
            probs: np.ndarray, top_k: int) -> dict:
    m = ev.classification_metrics(emb.y, probs, emb.dataset.classes)
    metrics = {k: m[k] for k in ("n", "top1", "top5", "mean_per_class_recall", "macro_f1", "ece")}
    k = min(top_k, len(emb.dataset.classes))
    metrics["top_k"] = {"k": top_k, "accuracy": ev.top_k_accuracy(emb.y, probs, k) if top_k == k else None}
    metrics["n_skipped"] = len(emb.skipped)
    return {"kind": kind, "model": model, "fingerprint": str(fingerprint), "prompt_set": prompt_set,
            "metrics": metrics, "per_class": m["per_class"], "confusion_matrix": m["confusion_matrix"],
            "mistakes": _mistakes(emb, probs)}


def zero_shot(encoder: Encoder, model: str, emb: EmbeddedSplit, prompt_set: str, templates: Sequence,
              calib: EmbeddedSplit | None = None, top_k: int = 5) -> dict:
    """One (model, prompt set) row: metrics, calibration and the "none of these" threshold, all on the
    model's own probabilities (softmax for CLIP, sigmoid per label for SigLIP)."""
    ds = emb.dataset
    class_vecs = build_classifier(encoder, ds.label_texts, templates)
    scale, bias = encoder.logit_scale, encoder.logit_bias
    rule = scoring(bias)
    probs = probabilities(emb.vectors, class_vecs, scale, bias)
    rec = _record("zero-shot", model, encoder.fingerprint, prompt_set, emb, probs, top_k)
    rec["n_templates"] = len(templates)
    rec["scoring"] = rule
    rec["calibration"] = ev.calibration(logits(emb.vectors, class_vecs, scale, bias), emb.y,
                                        logits(calib.vectors, class_vecs, scale, bias) if calib else None,
                                        calib.y if calib else None, rule=rule)
    if calib:
        rec["calibration"]["fitted_on"] = f"split {calib.dataset.split!r}"

    def scores(vecs):  # what "none of these" thresholds: cosines (CLIP), the model's probabilities (SigLIP)
        if rule == "sigmoid":
            return probabilities(vecs, class_vecs, scale, bias)
        return vecs.astype(np.float64) @ class_vecs.astype(np.float64).T

    rec["none_of_these"] = ev.none_of_these(scores(emb.vectors), emb.y, ds.other_class(),
                                            (scores(calib.vectors), calib.y) if calib else None,
                                            score="probability" if rule == "sigmoid" else "cosine")
    if calib:
        rec["none_of_these"]["fitted_on"] = f"split {calib.dataset.split!r}"
    return rec


def linear_probe(model: str, fingerprint: Fingerprint, train: EmbeddedSplit, emb: EmbeddedSplit,
                 top_k: int = 5) -> dict:
    out = ev.linear_probe(train.vectors, train.y, emb.vectors, len(emb.dataset.classes))
    rec = _record("linear-probe", model, fingerprint, "linear probe", emb, out["probs"], top_k)
    rec["linear_probe"] = {"train_split": train.dataset.split, "n_train": out["n_train"],
                           "n_train_skipped": len(train.skipped), "l2": out["l2"]}
    return rec


def evaluate_model(encoder: Encoder, model: str, ds: LabelledDataset, prompt_sets: Mapping[str, Sequence],
                   load_split: Callable[[str], LabelledDataset] | None = None,
                   cache: EmbeddingCache | None = None, top_k: int = 5, probe: bool = True,
                   batch_size: int = 32, on_progress=None, limits: ImageLimits = DEFAULT_LIMITS,
                   fewshot: FewShotOptions | None = None, curves: list | None = None
                   ) -> tuple[list[dict], list[Skipped]]:
    """All rows for one model: one zero-shot row per prompt set, plus a linear-probe row when the
    dataset has a train split, plus a few-shot row for `fewshot.examples`/`fewshot.classifier`; the
    rows of `fewshot.shots`' curves are appended to `curves`. Returns (records, skipped files of the
    evaluated split, then of the train and calibration splits, then of the examples)."""
    train_name, calib_name = companion_splits(ds) if load_split else (None, None)
    if fewshot and fewshot.shots and not train_name:
        raise UsageError(f"--shots draws its examples from a train split, and {ds.source} has none")
    emb = embed_split(encoder, ds, cache, batch_size, on_progress=on_progress, limits=limits)
    if len(emb.paths) == 0:
        return [], emb.skipped
    extra = {s: embed_split(encoder, load_split(s), cache, batch_size, limits=limits)
             for s in {train_name, calib_name} - {None}}
    calib = extra.get(calib_name)
    rows = [zero_shot(encoder, model, emb, name, t, calib, top_k) for name, t in prompt_sets.items()]
    if probe and train_name and len(extra[train_name].paths):
        rows.append(linear_probe(model, encoder.fingerprint, extra[train_name], emb, top_k))
    # the companion splits' unreadable files are listed too (the probe row counts its train split's)
    skipped = emb.skipped + [s for name in sorted(extra) for s in extra[name].skipped]
    templates = next(iter(prompt_sets.values()))
    if fewshot and fewshot.scores_a_classifier:
        row, sk = fewshot_row(encoder, model, emb, templates, fewshot, cache, batch_size, limits, top_k)
        rows.append(row)
        skipped += sk
    if fewshot and fewshot.shots and curves is not None:
        curves += fewshot_curves(encoder, model, emb, extra[train_name], calib, templates, fewshot, rows[0])
    return rows, skipped


def fewshot_row(encoder: Encoder, model: str, emb: EmbeddedSplit, templates: Sequence, opts: FewShotOptions,
                cache: EmbeddingCache | None, batch_size: int, limits: ImageLimits, top_k: int
                ) -> tuple[dict, list[Skipped]]:
    """The row of a classifier fitted on example pictures (or read from a file), on the evaluated
    split: the usual metrics plus coverage and mean set size, or, for one class of examples, the
    false-alarm and detection rates (the evaluated split's other classes are the unusual images)."""
    from clipseek.evaluation.fewshot_eval import fitted_metrics
    from clipseek.fewshot.fit import classifier_for

    clf, skipped = classifier_for(encoder, opts.examples, opts.classifier, templates=templates, method=opts.method,
                                  coverage=opts.coverage, false_alarm=opts.false_alarm, cache=cache,
                                  batch_size=batch_size, limits=limits)
    probs, extra = fitted_metrics(clf, emb.vectors, emb.y, emb.dataset.classes)
    d = clf.describe()
    label = f"{d['method']} ({d.get('n_examples', '?')} examples)"
    info = {k: d.get(k) for k in ("method", "settings", "temperature", "conformal", "anomaly", "n_examples")}
    info.update(source=opts.examples or opts.classifier, why=d["selection"].get("why"))
    if probs is None:
        return {"kind": "one-class", "model": model, "fingerprint": str(encoder.fingerprint), "prompt_set": label,
                "metrics": {"n": len(emb.y), "n_skipped": len(emb.skipped), **extra}, "fewshot": info}, skipped
    row = _record("few-shot", model, encoder.fingerprint, label, emb, probs, top_k)
    row["metrics"].update(extra)
    row["fewshot"] = info
    return row, skipped


def fewshot_curves(encoder: Encoder, model: str, emb: EmbeddedSplit, train: EmbeddedSplit,
                   calib: EmbeddedSplit | None, templates: Sequence, opts: FewShotOptions,
                   zero_row: dict) -> list[dict]:
    """`--shots`: every method's top-1 (coverage, set size) per number of examples per class."""
    from clipseek.evaluation.fewshot_eval import curves
    from clipseek.fewshot.examples import ExampleSet, text_vectors

    ds = emb.dataset
    texts = list(ds.label_texts)
    base = ExampleSet(list(ds.classes), texts, text_vectors(encoder, texts, templates), train.vectors, train.y,
                      float(encoder.logit_scale), str(encoder.fingerprint),
                      (calib.vectors, calib.y) if calib is not None and len(calib.y) else None)
    rows = curves(base, (train.vectors, train.y), (emb.vectors, emb.y), opts.shots, opts.seeds, opts.coverage,
                  zero_row["metrics"]["top1"])
    return [{"model": model, **r} for r in rows]


def evaluate_retrieval(encoder: Encoder, model: str, caps: CaptionDataset, cache: EmbeddingCache | None = None,
                       batch_size: int = 32, on_progress=None, limits: ImageLimits = DEFAULT_LIMITS
                       ) -> tuple[dict, list[Skipped]]:
    """Text->image and image->text recall@1/5/10; captions of unreadable images are left out."""
    emb = embed_cached(encoder, caps.images, cache, batch_size=batch_size, on_progress=on_progress,
                       limits=limits)
    pos = {p: i for i, p in enumerate(emb.paths)}
    keep = [j for j, i in enumerate(caps.caption_image) if caps.images[i] in pos]
    texts = [caps.captions[j] for j in keep]
    owner = [pos[caps.images[caps.caption_image[j]]] for j in keep]
    text_vecs = encoder.encode_texts(texts) if texts else np.zeros((0, encoder.dim), np.float32)
    metrics = ev.retrieval_recall(emb.vectors, text_vecs, owner, texts=texts) if texts else {}
    metrics["n_skipped"] = len(emb.skipped)
    return {"kind": "retrieval", "model": model, "fingerprint": str(encoder.fingerprint),
            "prompt_set": None, "metrics": metrics}, emb.skipped


def resolve_prompt_sets(templates: Sequence[str] = (), template_sets: Sequence[str] = ()) -> dict[str, list]:
    """--template T (each one a prompt set of one template) and --templates NAME|FILE (each a set).
    No option: the default single template."""
    from pathlib import Path

    from clipseek.core.prompts import DEFAULT_TEMPLATE, check_template, load_templates

    out: dict[str, list] = {}
    for t in templates:
        out[t] = [check_template(t)]
    for spec in template_sets:
        out[Path(spec).name if Path(spec).is_file() else spec] = load_templates(spec)
    return out or {DEFAULT_TEMPLATE: [DEFAULT_TEMPLATE]}


def run_eval(data: str, models: Sequence[str], load_encoder: Callable[[str], Encoder],
             prompt_sets: Mapping[str, Sequence], task: str = "classification", split: str | None = None,
             image_column: str | None = None, label_column: str | None = None,
             cache: EmbeddingCache | None = None, top_k: int = 5, probe: bool = True, batch_size: int = 32,
             materialize_dir: str | None = None, progress=None,
             on_warning: Callable[[str], None] | None = None,
             limits: ImageLimits = DEFAULT_LIMITS, fewshot: FewShotOptions | None = None) -> dict:
    """Read DATA, evaluate each model (loaded one at a time by `load_encoder`) and return the report
    document (`report.build_document`). `progress(total, description)` is a context manager yielding an
    `advance(n)` callable (the CLI passes its progress bar). Dataset warnings are in the document
    (`dataset.warnings`); `on_warning` also gets each one as soon as the data is read (default: the
    `clipseek.evaluation` logger). Images that a `datasets` dataset holds as bytes are written to
    `materialize_dir`, by default `dataset-images/` in the embedding cache's folder. `fewshot`: a
    classifier fitted on example pictures (or read from a file) gets a row, and `--shots` curves go to
    the document's `fewshot_curves`."""
    from contextlib import nullcontext

    from clipseek.data.labelled import read_captions
    from clipseek.data.load import load_labelled
    from clipseek.evaluation.report import build_document

    if task not in ("classification", "retrieval"):
        raise UsageError(f"--task must be classification or retrieval, not {task!r}")
    progress = progress or (lambda n, d: nullcontext(None))
    on_warning = on_warning or log.warning
    if materialize_dir is None:  # beside the embedding cache in use, so --cache-dir moves both
        materialize_dir = str(default_materialize_dir(cache.directory if cache else None))
    if task == "retrieval":
        caps = read_captions(data)
        dataset = {"source": caps.source, "split": None, "splits": [], "n_images": len(caps.images),
                   "n_captions": len(caps.captions), "warnings": []}
    else:
        load = lambda s: load_labelled(data, s, image_column, label_column, materialize_dir)  # noqa: E731
        ds = load(split)
        dataset = {**ds.describe(), "warnings": ds.warnings}
        for w in ds.warnings:
            on_warning(w)
    if fewshot and task == "retrieval":
        raise UsageError("--examples, --classifier and --shots are for --task classification")
    rows, skipped, curve_rows = [], [], []
    for name in models:
        encoder = load_encoder(name)
        with progress(dataset["n_images"], f"embedding ({name})") as advance:
            if task == "retrieval":
                row, sk = evaluate_retrieval(encoder, name, caps, cache, batch_size, advance, limits)
                rows.append(row)
            else:
                new, sk = evaluate_model(encoder, name, ds, prompt_sets, load, cache, top_k, probe,
                                         batch_size, advance, limits, fewshot, curve_rows)
                rows += new
        skipped += sk
        del encoder
    doc = build_document(task, dataset, rows, skipped)
    if fewshot and fewshot.shots:
        doc["fewshot_curves"] = fewshot.curves_doc(curve_rows)
    return doc
