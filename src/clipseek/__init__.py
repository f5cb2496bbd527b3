"""clipseek: zero-shot classification, evaluation and text-to-image search with CLIP models.

`import clipseek` is cheap; heavy modules (torch, transformers) load on first use: each public name is
resolved from its module when first read (`__getattr__`). The same names are imported under
`TYPE_CHECKING`, so IDEs and type checkers see every signature.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from clipseek._version import __version__

_EXPORTS = {
    "load_model": "clipseek.model.loader",
    "DEFAULT_MODEL": "clipseek.model.loader",
    "classify": "clipseek.zero_shot",
    "classify_images": "clipseek.zero_shot",
    "ClassifyResult": "clipseek.zero_shot",
    "Prediction": "clipseek.zero_shot",
    "classify_fitted": "clipseek.zero_shot",
    "fit_examples": "clipseek.fewshot.fit",
    "load_classifier": "clipseek.fewshot.classifier_file",
    "save_classifier": "clipseek.fewshot.classifier_file",
    "probabilities": "clipseek.core.scores",
    "build_classifier": "clipseek.core.prompts",
    "open_image": "clipseek.core.images",
    "load_labelled": "clipseek.data.load",
    "evaluate": "clipseek.evaluation.evaluate",
    "EvalResult": "clipseek.evaluation.evaluate",
    "run_eval": "clipseek.evaluation.run",
    "Gallery": "clipseek.gallery.gallery",
    "SearchResult": "clipseek.gallery.result",
    "Filter": "clipseek.gallery.query",
    "ClipseekError": "clipseek.errors",
    "ImageError": "clipseek.errors",
    "UsageError": "clipseek.errors",
    "ModelLoadError": "clipseek.errors",
}

if TYPE_CHECKING:  # the same names, for IDEs and type checkers (`X as X`: an explicit re-export)
    from clipseek.core.images import open_image as open_image
    from clipseek.core.prompts import build_classifier as build_classifier
    from clipseek.core.scores import probabilities as probabilities
    from clipseek.data.load import load_labelled as load_labelled
    from clipseek.errors import (
        ClipseekError as ClipseekError,
    )
    from clipseek.errors import (
        ImageError as ImageError,
    )
    from clipseek.errors import (
        ModelLoadError as ModelLoadError,
    )
    from clipseek.errors import (
        UsageError as UsageError,
    )
    from clipseek.evaluation.evaluate import EvalResult as EvalResult
    from clipseek.evaluation.evaluate import evaluate as evaluate
    from clipseek.evaluation.run import run_eval as run_eval
    from clipseek.fewshot.classifier_file import (
        load_classifier as load_classifier,
    )
    from clipseek.fewshot.classifier_file import (
        save_classifier as save_classifier,
    )
    from clipseek.fewshot.fit import fit_examples as fit_examples
    from clipseek.gallery.gallery import Gallery as Gallery
    from clipseek.gallery.query import Filter as Filter
    from clipseek.gallery.result import SearchResult as SearchResult
    from clipseek.model.loader import DEFAULT_MODEL as DEFAULT_MODEL
    from clipseek.model.loader import load_model as load_model
    from clipseek.zero_shot import (
        ClassifyResult as ClassifyResult,
    )
    from clipseek.zero_shot import (
        Prediction as Prediction,
    )
    from clipseek.zero_shot import (
        classify as classify,
    )
    from clipseek.zero_shot import (
        classify_fitted as classify_fitted,
    )
    from clipseek.zero_shot import (
        classify_images as classify_images,
    )

__all__ = [  # every name of _EXPORTS (a test checks), and the version
    "ClassifyResult", "ClipseekError", "DEFAULT_MODEL", "EvalResult", "Filter", "Gallery", "ImageError",
    "ModelLoadError", "Prediction", "SearchResult", "UsageError", "build_classifier", "classify",
    "classify_fitted", "classify_images", "evaluate", "fit_examples", "load_classifier", "load_labelled",
    "load_model", "open_image", "probabilities", "run_eval", "save_classifier", "__version__",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'clipseek' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
