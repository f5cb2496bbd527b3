"""Zero-shot classification: probabilities and top-k for images x labels. Nothing here prints.

Probabilities are the model's own (`core.scores.probabilities`): a softmax over the labels for CLIP,
an independent sigmoid per label for SigLIP-style models (those with a `logit_bias`).
`classify_fitted` classifies with a classifier fitted on example pictures (`clipseek.fewshot`): its
softmax over its classes, and, when it was calibrated, each image's conformal set and whether the image
is unlike the examples."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from clipseek.core.images import DEFAULT_LIMITS, ImageLimits
from clipseek.core.organise import UNSURE, Transfer, plan_transfers, safe_folder_name
from clipseek.core.prompts import (
    DEFAULT_TEMPLATE,
    Template,
    build_classifier,
    clean_labels,
)
from clipseek.core.scores import probabilities, scoring, top_k
from clipseek.embed.stages import embed_all
from clipseek.errors import Skipped

if TYPE_CHECKING:
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
        d = {"path": self.path, "label": self.label,
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
    classifier: dict | None = None    # a fitted classifier's summary (classify_fitted)

    def to_dict(self) -> dict:
        d = {"labels": self.labels, "scoring": self.scoring}
        if self.classifier is not None:
            d["classifier"] = self.classifier
        return {**d, "results": [p.to_dict() for p in self.predictions],
                "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped]}


def classify(encoder: Encoder, paths: Sequence[str], labels: Sequence[str],
             templates: Sequence[Template] = (DEFAULT_TEMPLATE,), top: int = 5, batch_size: int = 32,
             workers: int | None = None, on_progress: Callable[[int], None] | None = None,
             limits: ImageLimits = DEFAULT_LIMITS) -> ClassifyResult:
    """Classify image files against labels. Unreadable files are returned in `skipped`; `limits`
    bounds what one file may cost (bytes read, pixels decoded)."""
    labels = clean_labels(labels)
    class_vecs = build_classifier(encoder, labels, templates)
    emb = embed_all(encoder, paths, batch_size=batch_size, workers=workers, on_progress=on_progress,
                    limits=limits)
    probs = probabilities(emb.vectors, class_vecs, encoder.logit_scale, encoder.logit_bias)
    preds = [Prediction(p, r) for p, r in zip(emb.paths, top_k(probs, labels, top))]
    best = (emb.vectors @ class_vecs.T).max(axis=1) if len(preds) else np.zeros(0, np.float32)
    return ClassifyResult(labels, preds, emb.skipped, probs, best, scoring(encoder.logit_bias))


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
            pred.anomaly, pred.unusual = float(out.anomaly[i]), bool(out.unusual[i])
    summary = {k: v for k, v in clf.describe().items() if k in ("kind", "method", "settings", "conformal", "anomaly")}
    return ClassifyResult(list(clf.classes), preds, emb.skipped, out.probs, None, "softmax", summary)


def sort_plan(result: ClassifyResult, out_dir: str, unsure_below: float | None = None,
              none_below: float | None = None) -> list[Transfer]:
    """Where each classified image goes: OUT/<label as a safe folder name>/<file name>, or
    OUT/_unsure/ when its top probability is below `unsure_below` or its best cosine below
    `none_below` ("none of these"), or (a fitted classifier) its conformal set is not a single label;
    OUT/_unusual/ when a fitted classifier flags it as unlike its examples. Name clashes get a suffix
    (see core.organise.plan_transfers)."""
    rows = []
    for k, p in enumerate(result.predictions):
        label, prob = p.ranked[0]
        unsure = (unsure_below is not None and prob < unsure_below) or \
            (none_below is not None and result.best_cosine is not None and result.best_cosine[k] < none_below) or \
            (p.set is not None and len(p.set) != 1)
        folder = UNUSUAL if p.unusual else UNSURE if unsure else safe_folder_name(label)
        rows.append((p.path, os.path.join(folder, os.path.basename(p.path)), label, prob))
    return plan_transfers(rows, out_dir)


def classify_images(encoder: Encoder, images, labels: Sequence[str],
                    templates: Sequence[Template] = (DEFAULT_TEMPLATE,)) -> np.ndarray:
    """In-memory PIL images -> (N, L) probabilities (the model's own: softmax or sigmoid)."""
    class_vecs = build_classifier(encoder, clean_labels(labels), templates)
    return probabilities(encoder.encode_images(list(images)), class_vecs, encoder.logit_scale,
                         encoder.logit_bias)
