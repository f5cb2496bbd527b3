"""The one entry point the jobs use: a classifier from `--examples DIR` (fitted now) or from
`--classifier FILE` (loaded and checked against the model in use)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

from clipseek.core.images import DEFAULT_LIMITS, ImageLimits
from clipseek.core.prompts import DEFAULT_TEMPLATE, Template
from clipseek.embed.cache import EmbeddingCache
from clipseek.errors import Skipped, UsageError
from clipseek.fewshot.classifier import FewShotClassifier, fit_classifier
from clipseek.fewshot.classifier_file import load_classifier
from clipseek.fewshot.examples import load_examples

if TYPE_CHECKING:
    from clipseek.model.base import Encoder


def fit_examples(encoder: Encoder, examples: str, labels: Sequence[str] = (),
                 templates: Sequence[Template] = (DEFAULT_TEMPLATE,), method: str = "auto",
                 coverage: float | None = None, false_alarm: float | None = None,
                 cache: EmbeddingCache | None = None, batch_size: int = 32,
                 on_progress: Callable[[int], None] | None = None, limits: ImageLimits = DEFAULT_LIMITS,
                 seed: int = 0) -> tuple[FewShotClassifier, list[Skipped]]:
    """Read, embed (through `cache`) and fit EXAMPLES; (classifier, unreadable example files)."""
    ex = load_examples(encoder, examples, labels, templates, cache, batch_size, on_progress, limits)
    return fit_classifier(ex, method, coverage, false_alarm, seed), ex.skipped


def classifier_for(encoder: Encoder, examples: str | None = None, classifier: str | None = None,
                   **fit: object) -> tuple[FewShotClassifier, list[Skipped]]:
    """`--examples DIR` or `--classifier FILE` (exactly one). A file's classes, method and thresholds
    are fixed when it is fitted: giving `method`, `coverage`, `false_alarm` or `labels` with it is a
    UsageError, and so is a file fitted with another model."""
    if (examples is None) == (classifier is None):
        raise UsageError("give either --examples DIR or --classifier FILE")
    if examples is not None:
        return fit_examples(encoder, examples, **fit)  # type: ignore[arg-type]
    given = [k for k in ("labels", "method", "coverage", "false_alarm") if fit.get(k) not in (None, (), [], "auto")]
    if given:
        opt = "--" + given[0].replace("_", "-")
        raise UsageError(f"{opt} cannot change a fitted classifier ({classifier}); fit it again with "
                         f"clipseek fit ... {opt}")
    clf = load_classifier(classifier)
    clf.check_model(encoder.fingerprint, f"classifier {classifier}")
    return clf, []
