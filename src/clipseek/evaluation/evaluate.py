"""One call for the common case: one model, one labelled dataset -> an `EvalResult`.

`evaluate(model, "data/")` takes what a notebook user has (a loaded Encoder or a model name/path; class
folders, a manifest or `hf:NAME`; optional templates) and returns the figures as attributes. The report
document behind it is the one `clipseek eval --format json` prints (`EvalResult.to_dict()`), and
`run_eval` stays the call for several models at once.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Sequence

from clipseek.core.images import DEFAULT_LIMITS, ImageLimits
from clipseek.errors import Skipped

if TYPE_CHECKING:
    from clipseek.embed.cache import EmbeddingCache
    from clipseek.model.base import Encoder

Templates = str | Sequence[str] | Mapping[str, Sequence[str]] | None


@dataclass(frozen=True)
class EvalResult:
    """The zero-shot figures of the first prompt set (`rows` holds every row: each prompt set, and
    the linear probe when the data has a train split); `document` is the whole report document."""

    model: str
    prompt_set: str
    n: int
    top1: float
    top5: float | None
    mean_per_class_recall: float
    macro_f1: float
    ece: float
    per_class: list[dict]
    confusion_matrix: list[list[int]]
    classes: list[str]
    rows: list[dict]
    skipped: list[Skipped]
    document: dict

    @property
    def linear_probe_top1(self) -> float | None:
        row = next((r for r in self.rows if r["kind"] == "linear-probe"), None)
        return None if row is None else row["metrics"]["top1"]

    def to_dict(self) -> dict:
        """The report document, as `clipseek eval --format json` prints it."""
        return self.document

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.document, indent=indent, ensure_ascii=False)


def evaluate(model: Encoder | str, data: str | os.PathLike[str], templates: Templates = None, *,
             split: str | None = None, top_k: int = 5, probe: bool = True,
             cache: EmbeddingCache | None = None, batch_size: int = 32,
             limits: ImageLimits = DEFAULT_LIMITS) -> EvalResult:
    """Zero-shot accuracy of `model` on the labelled images `data` (class folders, a .csv/.jsonl
    manifest, or hf:NAME), with the calibration and "none of these" figures of `clipseek eval`.

    `templates`: None (the default single template), one template string, a list of templates (one
    prompt set, ensembled), a named set or template file (e.g. "imagenet"), or {name: templates} for
    several prompt sets."""
    from clipseek.errors import UsageError
    from clipseek.evaluation.run import run_eval

    if isinstance(model, (str, os.PathLike)):
        from clipseek.model.loader import load_model

        name, encoder = os.fspath(model), load_model(os.fspath(model))
    else:
        name, encoder = model.name, model
    doc = run_eval(os.fspath(data), [name], lambda _: encoder, _prompt_sets(templates), split=split,
                   cache=cache, top_k=top_k, probe=probe, batch_size=batch_size, limits=limits)
    rows = [r for r in doc["rows"] if r["kind"] == "zero-shot"]
    if not rows:
        raise UsageError(f"no image of {os.fspath(data)} could be read: nothing to evaluate")
    m = rows[0]["metrics"]
    return EvalResult(name, rows[0]["prompt_set"], m["n"], m["top1"], m["top5"], m["mean_per_class_recall"],
                      m["macro_f1"], m["ece"], rows[0]["per_class"], rows[0]["confusion_matrix"],
                      list(doc["dataset"].get("classes", [])), doc["rows"],
                      [Skipped(s["path"], s["reason"]) for s in doc["skipped"]], doc)


def _prompt_sets(templates: Templates) -> dict[str, list]:
    from clipseek.core.prompts import check_template
    from clipseek.evaluation.run import resolve_prompt_sets

    if templates is None:
        return resolve_prompt_sets()
    if isinstance(templates, str):
        if "{}" in templates:
            return resolve_prompt_sets(templates=[templates])
        return resolve_prompt_sets(template_sets=[templates])
    if isinstance(templates, Mapping):
        return {str(k): [check_template(t) for t in v] for k, v in templates.items()}
    ts = [check_template(t) for t in templates]
    return {ts[0] if len(ts) == 1 else f"{len(ts)} templates": ts}
