"""clipseek: zero-shot classification, evaluation and text-to-image search with CLIP models.

`import clipseek` is cheap; heavy modules (torch, transformers) load on first use.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "load_model": "clipseek.models",
    "DEFAULT_MODEL": "clipseek.models",
    "classify_images": "clipseek.classify",
    "probabilities": "clipseek.classify",
    "build_classifier": "clipseek.prompts",
    "open_image": "clipseek.images",
    "load_labelled": "clipseek.datasets",
    "run_eval": "clipseek.eval_run",
    "Gallery": "clipseek.search",
    "SearchResult": "clipseek.search",
    "ClipseekError": "clipseek.errors",
    "ImageError": "clipseek.errors",
    "UsageError": "clipseek.errors",
    "ModelLoadError": "clipseek.errors",
}

# Functions that share their module's name are bound eagerly: once the submodule is imported, Python
# would otherwise shadow a lazy attribute with the module object. (classify.py imports no torch.)
from .classify import classify  # noqa: E402

__all__ = sorted(_EXPORTS) + ["__version__", "classify"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'clipseek' has no attribute {name!r}")
