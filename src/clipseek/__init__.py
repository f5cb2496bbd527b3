"""clipseek: zero-shot classification, evaluation and text-to-image search with CLIP models.

`import clipseek` is cheap; heavy modules (torch, transformers) load on first use.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "load_model": "clipseek.model.loader",
    "DEFAULT_MODEL": "clipseek.model.loader",
    "classify": "clipseek.zero_shot",
    "classify_images": "clipseek.zero_shot",
    "classify_fitted": "clipseek.zero_shot",
    "fit_examples": "clipseek.fewshot.fit",
    "load_classifier": "clipseek.fewshot.classifier_file",
    "save_classifier": "clipseek.fewshot.classifier_file",
    "probabilities": "clipseek.core.scores",
    "build_classifier": "clipseek.core.prompts",
    "open_image": "clipseek.core.images",
    "load_labelled": "clipseek.data.load",
    "run_eval": "clipseek.evaluation.run",
    "Gallery": "clipseek.gallery.facade",
    "SearchResult": "clipseek.gallery.facade",
    "ClipseekError": "clipseek.errors",
    "ImageError": "clipseek.errors",
    "UsageError": "clipseek.errors",
    "ModelLoadError": "clipseek.errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'clipseek' has no attribute {name!r}")
