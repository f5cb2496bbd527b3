"""Zero-shot classification: probabilities and top-k for images x labels. Nothing here prints."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from clipseek.core.images import DEFAULT_LIMITS, ImageLimits
from clipseek.core.prompts import (
    DEFAULT_TEMPLATE,
    Template,
    build_classifier,
    clean_labels,
)
from clipseek.core.scores import probabilities, top_k
from clipseek.embed.stages import embed_all
from clipseek.errors import Skipped

if TYPE_CHECKING:
    from clipseek.model.base import Encoder


@dataclass
class Prediction:
    path: str
    ranked: list[tuple[str, float]]   # (label, probability), best first

    @property
    def label(self) -> str:
        return self.ranked[0][0]

    def to_dict(self) -> dict:
        return {"path": self.path, "label": self.label,
                "predictions": [{"label": l, "score": round(p, 6)} for l, p in self.ranked]}


@dataclass
class ClassifyResult:
    labels: list[str]
    predictions: list[Prediction]
    skipped: list[Skipped] = field(default_factory=list)
    probs: np.ndarray | None = None   # (N, L), rows aligned with predictions

    def to_dict(self) -> dict:
        return {"labels": self.labels, "results": [p.to_dict() for p in self.predictions],
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
    probs = probabilities(emb.vectors, class_vecs, encoder.logit_scale)
    preds = [Prediction(p, r) for p, r in zip(emb.paths, top_k(probs, labels, top))]
    return ClassifyResult(labels, preds, emb.skipped, probs)


def classify_images(encoder: Encoder, images, labels: Sequence[str],
                    templates: Sequence[Template] = (DEFAULT_TEMPLATE,)) -> np.ndarray:
    """In-memory PIL images -> (N, L) probabilities."""
    class_vecs = build_classifier(encoder, clean_labels(labels), templates)
    return probabilities(encoder.encode_images(list(images)), class_vecs, encoder.logit_scale)
