"""Prompt templates, label lists and zero-shot classifier weights.

`DEFAULT_TEMPLATE` is the one default prompt (CLI, server, library). `split_labels` is the one way
inline labels are split (commas and line breaks), for the CLI and the server alike.

A template is a string with exactly one `{}` where the label goes and no other replacement field
(`{x}`, `{0}`, `{}` twice, a lone `{` or `}` are refused; `{{` and `}}` are literal braces, as in
`str.format`), or a callable label -> text. `check_template` is the one check, applied where templates
enter: the CLI options, template files, the server's `templates` field and `build_classifier`. A label's classifier
vector is the
mean of its unit prompt vectors, renormalized (CLIP's prompt ensembling). All prompts of all labels are
encoded in batches in one pass, so 1,000 labels x 80 templates is 80,000 texts in ~N/batch forwards.
"""

from __future__ import annotations

import json
import re
import string
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Sequence, Union

from clipseek.errors import UsageError

if TYPE_CHECKING:
    import numpy as np

DEFAULT_TEMPLATE = "a photo of a {}."
# The longest label, caption, query or template accepted anywhere (CLI, manifests, library, server). A
# CLIP model reads only its first 77 tokens (~300 characters of English); a longer text costs the
# tokenizer time and memory for nothing (a 100 MB label took 17.8 GB), so it is refused before that.
MAX_TEXT_CHARS = 2000
MAX_TEXT_FILE_BYTES = 64 << 20  # a labels or templates file (20,000 labels of 2,000 bytes fit)
BUILTIN_TEMPLATE_SETS = ("imagenet",)
Template = Union[str, Callable[[str], str]]


def builtin_templates(name: str) -> list[str]:
    if name not in BUILTIN_TEMPLATE_SETS:
        raise UsageError(f"unknown template set {name!r}; built in: {', '.join(BUILTIN_TEMPLATE_SETS)}"
                         " (or give a file with one template per line)")
    data = resources.files("clipseek").joinpath(f"core/templates_{name}.json").read_text("utf-8")
    return list(json.loads(data)["templates"])


def check_text(text: str, what: str = "a text") -> str:
    """`text` when it is at most MAX_TEXT_CHARS long, else UsageError naming `what` and the limit."""
    if len(text) > MAX_TEXT_CHARS:
        raise UsageError(f"{what} is {len(text):,} characters long; the limit is {MAX_TEXT_CHARS:,} "
                         "(a CLIP model reads only its first 77 tokens)")
    return text


def read_text_file(path: str | Path, what: str) -> str:
    """A labels or templates file as text (UTF-8), refused when larger than MAX_TEXT_FILE_BYTES."""
    p = Path(path)
    try:
        if not p.is_file():
            raise UsageError(f"{what} not found: {path}")
        if p.stat().st_size > MAX_TEXT_FILE_BYTES:
            raise UsageError(f"{what} {path} is larger than {MAX_TEXT_FILE_BYTES >> 20} MB")
        return p.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read {what} {path}: {e}") from None


def template_problem(t: str) -> str | None:
    """Why `t` is not a usable template (None when it is): one `{}`, no other field, no stray brace."""
    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(t) if name is not None]
    except ValueError as e:  # a lone "{" or "}"
        return f"{e} (write a literal brace as '{{{{' or '}}}}')"
    if not fields:
        return "no '{}' where the label goes"
    others = [f"{{{n}{'!' + c if c else ''}{':' + s if s else ''}}}" for n, s, c in fields
              if (n, s, c) != ("", "", None)]
    if others:
        return f"only '{{}}' may appear, not {', '.join(repr(o) for o in others)}"
    if len(fields) > 1:
        return f"{len(fields)} '{{}}' fields; exactly one is allowed"
    return None


def check_template(t: str, where: str = "") -> str:
    """`t` when it is a usable template, else UsageError naming it (and `where` it came from)."""
    if not isinstance(t, str):
        raise UsageError(f"{where}template must be a string, not {type(t).__name__}")
    check_text(t, f"{where}a template")
    problem = template_problem(t)
    if problem:
        raise UsageError(f"{where}bad template {t!r}: {problem}; a template has exactly one '{{}}' "
                         "where the label goes")
    return t


def load_templates(spec: str) -> list[str]:
    """`spec` is a built-in set name, or a .txt (one per line) / .json (list) file of templates."""
    if spec in BUILTIN_TEMPLATE_SETS:
        return builtin_templates(spec)
    path = Path(spec)
    if not path.is_file():
        raise UsageError(f"unknown template set {spec!r}: not a built-in set "
                         f"({', '.join(BUILTIN_TEMPLATE_SETS)}) and no such file")
    text = read_text_file(path, "template file")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise UsageError(f"{spec}: line {e.lineno}: not valid JSON ({e.msg})") from None
        items = data.get("templates") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise UsageError(f"{spec}: expected a JSON list of templates (or {{\"templates\": [...]}})")
        where = [f"{spec}: item {i + 1}: " for i in range(len(items))]
    else:
        lines = [(n, ln.strip()) for n, ln in enumerate(text.splitlines(), 1)
                 if ln.strip() and not ln.startswith("#")]
        items, where = [ln for _, ln in lines], [f"{spec}: line {n}: " for n, _ in lines]
    if not items:
        raise UsageError(f"template file {spec} holds no templates")
    return [check_template(t, w) for t, w in zip(items, where)]


def resolve_templates(template: str | None = None, templates: str | None = None) -> list[str]:
    """CLI/API helper: one explicit template, a template set, or the default single template."""
    if template and templates:
        raise UsageError("give either --template or --templates, not both")
    if templates:
        return load_templates(templates)
    return [check_template(template or DEFAULT_TEMPLATE)]


def clean_labels(labels: Sequence[str], where: str = "") -> list[str]:
    """Labels stripped, empty ones dropped; UsageError for none, a duplicate, or one over MAX_TEXT_CHARS."""
    out = [str(l).strip() for l in labels if str(l).strip()]
    for i, label in enumerate(out):
        check_text(label, f"{where}label {i + 1}" if where else f"label {i + 1} ({label[:20]!r}...)")
    if not out:
        raise UsageError("no labels given")
    dupes = sorted({l for l in out if out.count(l) > 1})
    if dupes:
        raise UsageError(f"duplicate labels: {', '.join(dupes)}")
    return out


LABEL_SEPARATORS = re.compile(r"[,\r\n]")


def split_labels(values: str | Iterable[str]) -> list[str]:
    """Labels typed inline (`--labels`, the server's `labels` field): each value is split on commas
    and line breaks, pieces are stripped, empty ones dropped. A labels file is read one label per line
    instead (`parse_labels`), so a label in a file may contain a comma."""
    items = [values] if isinstance(values, str) else values
    return [p.strip() for value in items for p in LABEL_SEPARATORS.split(str(value)) if p.strip()]


def parse_labels(labels: str | None = None, labels_file: str | None = None) -> list[str]:
    """Labels from a string (`split_labels`: commas or new lines) or a file (one per line, '#' comments)."""
    if labels and labels_file:
        raise UsageError("give either --labels or --labels-file, not both")
    if labels_file:
        lines = read_text_file(labels_file, "labels file").splitlines()
        for n, line in enumerate(lines, 1):
            check_text(line.strip(), f"{labels_file}: line {n}: the label")
        return clean_labels([ln for ln in lines if not ln.strip().startswith("#")])
    if not labels:
        raise UsageError("no labels: pass --labels \"cat,dog\" or --labels-file FILE")
    return clean_labels(split_labels(labels))


def render(template: Template, label: str) -> str:
    return template(label) if callable(template) else template.format(label)


def build_classifier(encoder, labels: Sequence[str], templates: Sequence[Template] = (DEFAULT_TEMPLATE,),
                     batch_size: int = 256) -> np.ndarray:
    """(L, D) unit classifier weights: per label, the renormalized mean of its unit prompt vectors."""
    labels = [check_text(label, f"label {i + 1}") for i, label in enumerate(labels)]
    templates = check_templates(templates)
    prompts = [render(t, label) for label in labels for t in templates]
    vecs = encoder.encode_texts(prompts, batch_size=batch_size)
    return mean_unit(vecs.reshape(len(labels), len(templates), -1))


def check_templates(templates: Sequence[Template]) -> list[Template]:
    """The templates as a list; each string one is checked (`check_template`), callables are kept."""
    templates = list(templates)
    if not templates:
        raise UsageError("no templates given")
    return [t if callable(t) else check_template(t) for t in templates]


def mean_unit(vecs: np.ndarray) -> np.ndarray:
    """(L, T, D) unit prompt vectors -> (L, D) renormalized means (CLIP's prompt ensembling)."""
    import numpy as np  # here, so the CLI can read this module's constants without loading numpy

    m = vecs.mean(axis=1)
    return (m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def words_of(texts: Iterable[str]) -> list[str]:
    """Lower-cased words as CLIP's pre-tokenizer splits them (letters, digits, punctuation)."""
    found: set[str] = set()
    for t in texts:
        found.update(re.findall(r"[a-z]+|[0-9]|[^\sa-z0-9]+", t.lower()))
    return sorted(found)
