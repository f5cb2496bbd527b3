"""Example pictures in, labelled vectors out: what every few-shot method is fitted from.

EXAMPLES is what `clipseek eval` reads (`data.load.load_labelled`): a folder per class, a CSV/JSONL
manifest, or a `datasets` dataset. With splits, the `train` split holds the examples and a validation
split (validation, val, valid, dev), when there is one, the calibration examples of `--coverage`.
Vectors come through the embedding cache (`embed.cache`), so fitting again is only arithmetic.

Labels may mix text and pictures: a class folder's name (or its `classes.json` text) is its label text;
a `classes.json` text of "" marks a class known only by its pictures; `labels` adds classes known only
by a name (a label naming an existing class, by name or label text, just confirms it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from clipseek.core.images import DEFAULT_LIMITS, ImageLimits
from clipseek.core.prompts import DEFAULT_TEMPLATE, Template, build_classifier, clean_labels
from clipseek.data.labelled import CALIBRATION_SPLITS, LabelledDataset
from clipseek.embed.cache import EmbeddingCache, embed_cached
from clipseek.errors import Skipped, UsageError

if TYPE_CHECKING:
    from clipseek.model.base import Encoder


@dataclass
class ExampleSet:
    classes: list[str]
    texts: list[str | None]          # each class's label text; None: known only by its pictures
    text_vecs: np.ndarray            # (C, D) unit prompt vectors; zero rows where texts[c] is None
    x: np.ndarray                    # (M, D) example vectors
    y: np.ndarray                    # (M,) class index
    scale: float                     # the model's logit scale
    fingerprint: str                 # str(encoder.fingerprint)
    calibration: tuple[np.ndarray, np.ndarray] | None = None   # (vectors, y) of a calibration split
    paths: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    source: str = ""
    templates: list[str] = field(default_factory=list)

    @property
    def has_text(self) -> np.ndarray:
        return np.array([t is not None for t in self.texts], bool)

    def counts(self) -> np.ndarray:
        return np.bincount(self.y, minlength=len(self.classes))


def text_vectors(encoder: Encoder, texts: Sequence[str | None], templates: Sequence[Template]) -> np.ndarray:
    """(C, D) the text classifier's rows; zero rows for classes without a name."""
    out = np.zeros((len(texts), encoder.dim), np.float32)
    named = [i for i, t in enumerate(texts) if t is not None]
    if named:
        out[named] = build_classifier(encoder, [texts[i] for i in named], templates)
    return out


def _read(spec: str) -> tuple[LabelledDataset, LabelledDataset | None]:
    """The examples (the train split when EXAMPLES has splits) and the calibration split, if any."""
    from clipseek.data.load import load_labelled

    try:
        ds = load_labelled(spec, "train")
    except UsageError as first:
        ds = load_labelled(spec, None)
        if ds.splits:  # splits, but none called train
            raise UsageError(f"examples {spec}: {first}") from None
        return ds, None
    calib = next((s for s in CALIBRATION_SPLITS if s in ds.splits), None)
    return ds, (load_labelled(spec, calib) if calib else None)


def _classes(ds: LabelledDataset, labels: Sequence[str]) -> tuple[list[str], list[str | None]]:
    classes = list(ds.classes)
    texts: list[str | None] = [t if t.strip() else None for t in ds.label_texts]
    known = {c: i for i, c in enumerate(classes)} | {t: i for i, t in enumerate(texts) if t}
    for label in clean_labels(labels) if labels else []:
        if label in known:
            texts[known[label]] = texts[known[label]] or label
        else:
            known[label] = len(classes)
            classes.append(label)
            texts.append(label)
    return classes, texts


def load_examples(encoder: Encoder, spec: str, labels: Sequence[str] = (),
                  templates: Sequence[Template] = (DEFAULT_TEMPLATE,), cache: EmbeddingCache | None = None,
                  batch_size: int = 32, on_progress: Callable[[int], None] | None = None,
                  limits: ImageLimits = DEFAULT_LIMITS) -> ExampleSet:
    """Read and embed EXAMPLES. Unreadable files are skipped (listed in `skipped`); a class whose
    pictures are all unreadable, a class with neither name nor pictures, or fewer than 2 usable
    examples is a UsageError (one line)."""
    ds, calib_ds = _read(spec)
    classes, texts = _classes(ds, labels)
    emb = embed_cached(encoder, ds.paths, cache, batch_size=batch_size, on_progress=on_progress, limits=limits)
    label_of = dict(zip(ds.paths, ds.labels))
    y = np.array([label_of[p] for p in emb.paths], np.int64)
    listed = np.bincount(np.asarray(ds.labels, np.int64), minlength=len(classes))
    readable = np.bincount(y, minlength=len(classes))
    for c, name in enumerate(classes):
        if listed[c] and not readable[c]:
            first = next(s for s in emb.skipped if label_of.get(s.path) == c)
            raise UsageError(f"{ds.source}: example class {name!r} has no readable image "
                             f"({listed[c]} unreadable; {first.path}: {first.reason})")
        if not readable[c] and texts[c] is None:
            raise UsageError(f"{ds.source}: class {name!r} has neither a label text nor example images")
    if len(y) < 2:
        raise UsageError(f"{ds.source}: {len(y)} usable example image{'s' * (len(y) != 1)}; "
                         "need at least 2 to choose and check a method")
    calibration, skipped = None, list(emb.skipped)
    if calib_ds is not None:
        ce = embed_cached(encoder, calib_ds.paths, cache, batch_size=batch_size, limits=limits)
        cl = dict(zip(calib_ds.paths, calib_ds.labels))
        calibration = (ce.vectors, np.array([cl[p] for p in ce.paths], np.int64))
        skipped += ce.skipped
    return ExampleSet(classes, texts, text_vectors(encoder, texts, templates), emb.vectors, y,
                      float(encoder.logit_scale), str(encoder.fingerprint), calibration, list(emb.paths),
                      skipped, ds.source, [t for t in templates if isinstance(t, str)])
