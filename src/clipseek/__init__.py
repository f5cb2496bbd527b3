"""clipseek: zero-shot classification, evaluation and text-to-image search with CLIP models.

`import clipseek` is cheap; heavy modules (torch, transformers) load on first use: each public name is
resolved from its module when first read (`__getattr__`). The same names are imported under
`TYPE_CHECKING`, so IDEs and type checkers see every signature.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from clipseek._version import __version__

_EXPORTS = {
    "load_model": "clipseek.model.loader",
    "DEFAULT_MODEL": "clipseek.model.loader",
    "classify": "clipseek.zero_shot",
    "classify_images": "clipseek.zero_shot",
    "ClassifyResult": "clipseek.zero_shot",
    "Prediction": "clipseek.zero_shot",
    "probabilities": "clipseek.core.scores",
    "build_classifier": "clipseek.core.prompts",
    "open_image": "clipseek.core.images",
    "load_labelled": "clipseek.data.load",
    "evaluate": "clipseek.evaluation.evaluate",
    "EvalResult": "clipseek.evaluation.evaluate",
    "run_eval": "clipseek.evaluation.run",
    "Gallery": "clipseek.gallery.gallery",
    "SearchResult": "clipseek.gallery.gallery",
    "Filter": "clipseek.gallery.query",
    "ClipseekError": "clipseek.errors",
    "ImageError": "clipseek.errors",
    "UsageError": "clipseek.errors",
    "ModelLoadError": "clipseek.errors",
}

if TYPE_CHECKING:
    from clipseek.core.images import open_image
    from clipseek.core.prompts import build_classifier
    from clipseek.core.scores import probabilities
    from clipseek.data.load import load_labelled
    from clipseek.errors import ClipseekError, ImageError, ModelLoadError, UsageError
    from clipseek.evaluation.evaluate import EvalResult, evaluate
    from clipseek.evaluation.run import run_eval
    from clipseek.gallery.gallery import Gallery, SearchResult
    from clipseek.gallery.query import Filter
    from clipseek.model.loader import DEFAULT_MODEL, load_model
    from clipseek.zero_shot import ClassifyResult, Prediction, classify, classify_images

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'clipseek' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
