"""Zero-shot classification: probabilities and top-k for images x labels. Nothing here prints.

Probabilities are the model's own (`core.scores.probabilities`): a softmax over the labels for CLIP,
an independent sigmoid per label for SigLIP-style models (those with a `logit_bias`).
`classify_fitted` classifies with a classifier fitted on example pictures (`clipseek.fewshot`): its
softmax over its classes, and, when it was calibrated, each image's conformal set and whether the image
is unlike the examples."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence, TypeVar, Union

import numpy as np

from clipseek.core.images import DEFAULT_LIMITS, ImageLimits, walk_images
from clipseek.core.numbers import check_number
from clipseek.core.organise import UNSURE, Transfer, plan_transfers, safe_folder_name
from clipseek.core.prompts import (
    DEFAULT_TEMPLATE,
    Template,
    build_classifier,
    clean_labels,
)
from clipseek.core.scores import probabilities, scoring, top_k
from clipseek.core.video import DEFAULT_VIDEO_LIMITS, Timeline, VideoLimits, media_kind
from clipseek.embed.stages import embed_all
from clipseek.errors import Skipped, UsageError, VideoError

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

    from clipseek.fewshot.classifier import FewShotClassifier
    from clipseek.model.base import Encoder

UNUSUAL = "_unusual"   # the --sort-into folder of images a fitted classifier flags as unlike its examples


@dataclass
class Prediction:
    path: str
    ranked: list[tuple[str, float]]   # (label, probability), best first
    set: list[str] | None = None      # a fitted classifier's conformal set (best first)
    anomaly: float | None = None      # a fitted classifier's distance to its examples
    unusual: bool | None = None       # anomaly above its threshold

    @property
    def label(self) -> str:
        return self.ranked[0][0]

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"path": self.path, "label": self.label,
             "predictions": [{"label": l, "score": round(p, 6)} for l, p in self.ranked]}
        if self.set is not None:
            d["set"] = self.set
        if self.anomaly is not None:
            d.update(anomaly=round(self.anomaly, 6), unusual=self.unusual)
        return d


@dataclass
class ClassifyResult:
    labels: list[str]
    predictions: list[Prediction]
    skipped: list[Skipped] = field(default_factory=list)
    probs: np.ndarray | None = None   # (N, L), rows aligned with predictions
    best_cosine: np.ndarray | None = None  # (N,) cosine of each image to its best label
    scoring: str = "softmax"          # "softmax" (rows sum to 1) or "sigmoid" (one probability per label)
    timelines: list[Timeline] = field(default_factory=list)  # the videos among the paths
    classifier: dict | None = None    # a fitted classifier's summary (classify_fitted)

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"labels": self.labels, "scoring": self.scoring}
        if self.classifier is not None:
            d["classifier"] = self.classifier
        videos = {"videos": [t.to_dict() for t in self.timelines]} if self.timelines else {}
        return {**d, "results": [p.to_dict() for p in self.predictions], **videos,
                "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped]}


T = TypeVar("T")
ImageInput = Union[str, "os.PathLike[str]", "PILImage"]


def classify(model: Encoder | str, images: ImageInput | Iterable[ImageInput], labels: Sequence[str],
             templates: Sequence[Template] = (DEFAULT_TEMPLATE,), top: int = 5, batch_size: int = 32,
             workers: int | None = None, on_progress: Callable[[int], None] | None = None,
             limits: ImageLimits = DEFAULT_LIMITS, expand_folders: bool = True) -> ClassifyResult:
    """Classify images against labels: `classify(model, "photos/", ["cat", "dog"])`.

    `model`: a loaded Encoder, or a name/path for `load_model`. `images`: one file, one folder (its
    images, recursively, as on the command line), a PIL image, or a list mixing them; files are read
    in worker threads and those that cannot be read come back in `skipped`, a PIL image is used as
    given and named `<image N>` (N: its position in the list). Predictions keep the input order.
    `limits` bounds what one file may cost (bytes read, pixels decoded). `expand_folders=False`: every
    path is one file, a folder among them is skipped as one (for a list already expanded, as the CLI's)."""
    encoder = _as_encoder(model)
    labels = clean_labels(labels)
    class_vecs = build_classifier(encoder, labels, templates)
    items = _image_items(images, expand_folders)
    videos = [x for x in items if not isinstance(x, tuple) and media_kind(x) == "video"]
    files = [x for x in items if not isinstance(x, tuple) and media_kind(x) != "video"]
    emb = embed_all(encoder, files, batch_size=batch_size, workers=workers, on_progress=on_progress,
                    limits=limits)
    by_path = dict(zip(emb.paths, emb.vectors))
    pil = [x for x in items if isinstance(x, tuple)]
    pil_vecs = encoder.encode_images([im for _, im in pil], batch_size=batch_size) if pil else \
        np.zeros((0, encoder.dim), np.float32)
    by_name = {name: pil_vecs[k] for k, (name, _) in enumerate(pil)}
    names, rows = [], []
    for x in items:  # the input order: files that were read, and the in-memory images
        name = x[0] if isinstance(x, tuple) else x
        vec = by_name.get(name) if isinstance(x, tuple) else by_path.get(name)
        if vec is not None:
            names.append(name)
            rows.append(vec)
    vectors = np.stack(rows).astype(np.float32) if rows else np.zeros((0, encoder.dim), np.float32)
    probs = probabilities(vectors, class_vecs, encoder.logit_scale, encoder.logit_bias)
    preds = [Prediction(p, r) for p, r in zip(names, top_k(probs, labels, top))]
    best = (vectors @ class_vecs.T).max(axis=1) if len(preds) else np.zeros(0, np.float32)
    result = ClassifyResult(labels, preds, emb.skipped, probs, best, scoring(encoder.logit_bias))
    for path in videos:  # a timeline each (`classify_video`)
        try:
            result.timelines.append(classify_video(encoder, path, labels, class_vecs=class_vecs,
                                                   batch_size=batch_size,
                                                   limits=VideoLimits(max_pixels=limits.max_pixels)))
        except VideoError as e:
            result.skipped.append(Skipped(path, e.reason))
        if on_progress:
            on_progress(1)
    return result
def classify_video(encoder: Encoder, path: str, labels: Sequence[str],
                   templates: Sequence[Template] = (DEFAULT_TEMPLATE,), batch_size: int = 32,
                   limits: VideoLimits = DEFAULT_VIDEO_LIMITS, class_vecs: np.ndarray | None = None) -> Timeline:
    """A video's timeline: its moments (`core.video.sample_moments`) classified, consecutive moments
    with the same top label merged into stretches (start, end, label, mean probability). Moments are
    encoded `batch_size` at a time as they are decoded. VideoError when the video cannot be read."""
    from clipseek.core.video import sample_moments, stretches

    labels = clean_labels(labels)
    if class_vecs is None:
        class_vecs = build_classifier(encoder, labels, templates)
    sampling = sample_moments(path, limits)
    times: list[float] = []
    probs: list[np.ndarray] = []
    for batch in _batches(sampling, batch_size):
        vecs = encoder.encode_images([m.image for m in batch])
        probs.append(probabilities(vecs, class_vecs, encoder.logit_scale, encoder.logit_bias))
        times.extend(m.time_s for m in batch)
    rows = np.concatenate(probs) if probs else np.zeros((0, len(labels)), np.float32)
    return Timeline(path, sampling.info.duration_s, stretches(times, rows, labels, sampling.info.duration_s),
                    sampling.notes)


def _batches(items: Iterable[T], n: int) -> Iterator[list[T]]:
    """Lists of `n` items (the last one shorter), taken as `items` yields them."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


def _as_encoder(model: Encoder | str) -> Encoder:
    if isinstance(model, (str, os.PathLike)):
        from clipseek.model.loader import load_model

        return load_model(os.fspath(model))
    return model


def _image_items(images: ImageInput | Iterable[ImageInput], expand_folders: bool = True) -> list:
    """Files as path strings (folders expanded, in the order given) and PIL images as (name, image)."""
    from PIL import Image

    if isinstance(images, (str, bytes, os.PathLike, Image.Image)):
        images = [images]
    out: list = []
    for k, x in enumerate(images):
        if isinstance(x, Image.Image):
            out.append((f"<image {k}>", x))
        elif not isinstance(x, (str, bytes, os.PathLike)):
            raise UsageError(f"images[{k}] is a {type(x).__name__}: give file or folder paths or PIL images")
        elif expand_folders and os.path.isdir(x):
            out.extend(walk_images(os.fsdecode(x)))
        else:
            out.append(os.fsdecode(x))
    return out


def classify_fitted(encoder: Encoder, paths: Sequence[str], clf: FewShotClassifier, top: int = 5,
                    batch_size: int = 32, workers: int | None = None,
                    on_progress: Callable[[int], None] | None = None,
                    limits: ImageLimits = DEFAULT_LIMITS) -> ClassifyResult:
    """Classify image files with a fitted classifier (ModelMismatchError if it was fitted with another
    model): its probabilities, and each image's conformal set and anomaly score when it has them."""
    clf.check_model(encoder.fingerprint)
    emb = embed_all(encoder, paths, batch_size=batch_size, workers=workers, on_progress=on_progress,
                    limits=limits)
    out = clf.predict(emb.vectors)
    preds = [Prediction(p, r) for p, r in zip(emb.paths, top_k(out.probs, clf.classes, top))]
    for i, pred in enumerate(preds):
        if out.sets is not None:
            pred.set = [clf.classes[j] for j in out.sets[i]]
        if out.anomaly is not None:
            unusual = out.unusual
            pred.anomaly, pred.unusual = float(out.anomaly[i]), bool(unusual[i]) if unusual is not None else None
    summary = {k: v for k, v in clf.describe().items() if k in ("kind", "method", "settings", "conformal", "anomaly")}
    return ClassifyResult(list(clf.classes), preds, emb.skipped, out.probs, None, "softmax", classifier=summary)


def sort_plan(result: ClassifyResult, out_dir: str, unsure_below: float | None = None,
              none_below: float | None = None) -> list[Transfer]:
    """Where each classified image goes: OUT/<label as a safe folder name>/<file name>, or
    OUT/_unsure/ when its top probability is below `unsure_below` or its best cosine below
    `none_below` ("none of these"), or (a fitted classifier) its conformal set is not a single label;
    OUT/_unusual/ when a fitted classifier flags it as unlike its examples. Name clashes get a suffix
    (see core.organise.plan_transfers)."""
    if unsure_below is not None:
        check_number(unsure_below, "unsure_below (--unsure-below)", 0, 1)
    if none_below is not None:
        check_number(none_below, "none_below (--none-below)", -1, 1)
    rows = []
    for k, p in enumerate(result.predictions):
        label, prob = p.ranked[0]
        unsure = (unsure_below is not None and prob < unsure_below) or \
            (none_below is not None and result.best_cosine is not None and result.best_cosine[k] < none_below) or \
            (p.set is not None and len(p.set) != 1)
        folder = UNUSUAL if p.unusual else UNSURE if unsure else safe_folder_name(label)
        rows.append((p.path, os.path.join(folder, os.path.basename(p.path)), label, prob))
    return plan_transfers(rows, out_dir)


def classify_images(encoder: Encoder, images: Iterable[PILImage], labels: Sequence[str],
                    templates: Sequence[Template] = (DEFAULT_TEMPLATE,)) -> np.ndarray:
    """Deprecated: `classify(encoder, images, labels, templates).probs` does the same (and more)."""
    import warnings

    warnings.warn("classify_images is deprecated: use classify(model, images, labels).probs",
                  DeprecationWarning, stacklevel=2)
    probs = classify(encoder, list(images), labels, templates).probs
    assert probs is not None  # classify always sets it
    return probs
