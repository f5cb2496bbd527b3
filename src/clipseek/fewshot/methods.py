"""The few-shot methods: each turns image vectors into logits over the classes.

- `text`: the zero-shot classifier, `s * cos(x, t_c)` (s: the model's logit scale, t_c: the class's
  prompt vector). Needs a name for every class.
- `prototype`: `s * cos(x, p_c)`, p_c the renormalised mean of the class's example vectors. Needs
  examples of every class.
- `tip`: Tip-Adapter's training-free blend (Zhang et al., ECCV 2022), in its units (a logit scale of
  100 gives exactly its formula): `s * cos(x, t_c) + alpha * s/100 * sum_j exp(-beta (1 - cos(x, k_j)))
  [label_j = c]` over the example vectors k_j (the cache). alpha and beta are chosen by cross-validation.
- `logistic`: a softmax head `x W^T + b` started at the text classifier (`W0 = s * t_c`; for a class with
  only pictures, `s * p_c`) and pulled towards it by an L2 penalty whose strength is chosen by
  cross-validation (`logreg.py`): a strong one keeps the zero-shot classifier, a weak one follows the
  examples; a class with only a name keeps its text weights.

A class may lack one part of a blend (no name, or no example): that part's logit is then the image's
mean over the classes that have it, "no opinion" either way.

How a method and its settings are chosen: `selection.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clipseek.fewshot.logreg import LogRegFit, fit_softmax

METHODS = ("text", "prototype", "tip", "logistic")
TIP_ALPHAS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)
TIP_BETAS = (0.5, 1.0, 2.0, 4.0, 7.0, 12.0)
# Penalty on ||(W - W0) / s||^2 (relative to the text classifier's size), strongest first.
LOGISTIC_L2 = (100.0, 10.0, 1.0, 0.1, 0.01, 0.001)


@dataclass
class Task:
    """What every method is fitted from: the text side of each class, and labelled example vectors."""
    text_vecs: np.ndarray        # (C, D) unit prompt vectors; rows of classes without a name are zero
    has_text: np.ndarray         # (C,) bool
    scale: float                 # the model's logit scale
    x: np.ndarray                # (M, D) example vectors
    y: np.ndarray                # (M,) class index

    @property
    def n_classes(self) -> int:
        return len(self.has_text)

    def counts(self, idx=None) -> np.ndarray:
        y = self.y if idx is None else self.y[idx]
        return np.bincount(y, minlength=self.n_classes)


@dataclass
class Head:
    """A fitted method: `logits(x)`; `arrays` and `settings` are what the classifier file keeps."""
    method: str
    settings: dict
    arrays: dict[str, np.ndarray]
    scale: float

    def logits(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        a = self.arrays
        if self.method in ("text", "prototype"):
            return self.scale * (x @ a["class_vecs"].T)
        if self.method == "logistic":
            return x @ a["weights"].T + a["bias"]
        onehot = np.eye(len(a["has_text"]))[a["cache_labels"]]
        cos, evidence = bridged(x @ a["class_vecs"].T, a["has_text"].astype(bool),
                                cache_evidence(x @ a["cache_vecs"].T, onehot, self.settings["beta"]),
                                onehot.sum(axis=0) > 0, self.settings.get("bridge"))
        return tip_blend(self.scale * cos, evidence, self.settings["alpha"], self.scale)


def fill(part: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Columns of classes without this part get the row's mean over the classes that have it."""
    if present.all() or not present.any():
        return part if present.all() else np.zeros_like(part)
    out = part.copy()
    out[:, ~present] = part[:, present].mean(axis=1, keepdims=True)
    return out


def unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.divide(v, n, out=np.zeros_like(v), where=n > 0)


def prototypes(x: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """(C, D) renormalised class means; zero rows for classes without examples."""
    sums = np.zeros((n_classes, x.shape[1]))
    np.add.at(sums, y, np.asarray(x, np.float64))
    return unit(sums)


def cache_evidence(cos_cache: np.ndarray, onehot: np.ndarray, beta: float, leave_out: bool = False) -> np.ndarray:
    """Tip-Adapter's cache term per class: sum_j exp(-beta (1 - cos(x, k_j))) over the class's examples
    (0 for a class without any). `leave_out`: x are the cache's own vectors, each without itself."""
    affinity = np.exp(-beta * (1.0 - cos_cache))
    if leave_out:
        np.fill_diagonal(affinity, 0.0)
    return affinity @ onehot


def fit_bridge(cos: np.ndarray, evidence: np.ndarray, both: np.ndarray) -> list[float] | None:
    """Least-squares lines between the text cosine and the cache evidence, over (example, class) pairs
    of the classes that have both: [a, b, c, d] with evidence ~ a + b cos and cos ~ c + d evidence.
    None when no class has both (then a missing part is filled with the mean, as `fill`)."""
    t, e = cos[:, both].ravel(), evidence[:, both].ravel()
    if len(t) < 2:
        return None
    vt, ve, cv = t.var(), e.var(), ((t - t.mean()) * (e - e.mean())).mean()
    b = cv / vt if vt > 0 else 0.0
    d = cv / ve if ve > 0 else 0.0
    return [float(e.mean() - b * t.mean()), float(b), float(t.mean() - d * e.mean()), float(d)]


def bridged(cos: np.ndarray, has_text: np.ndarray, evidence: np.ndarray, has_examples: np.ndarray,
            bridge: list[float] | None) -> tuple[np.ndarray, np.ndarray]:
    """(text cosines, cache evidence) with the part a class lacks predicted from the part it has by the
    lines of `fit_bridge`: a class known only by name gets the evidence its text cosine typically comes
    with, so it competes on equal terms with classes that have pictures (not with "no evidence")."""
    if bridge is None:
        return fill(cos, has_text), fill(evidence, has_examples)
    a, b, c, d = bridge
    cos, evidence = cos.copy(), evidence.copy()
    evidence[:, ~has_examples] = a + b * cos[:, ~has_examples]
    cos[:, ~has_text] = c + d * evidence[:, ~has_text]
    return cos, evidence


def tip_blend(text: np.ndarray, evidence: np.ndarray, alpha: float, scale: float) -> np.ndarray:
    """Tip-Adapter's logits: the (filled) text logits plus alpha times the cache evidence."""
    return text + alpha * scale / 100.0 * evidence


def applicable(method: str, task: Task) -> str | None:
    """Why `method` cannot be used on `task` (None when it can)."""
    if method == "text" and not task.has_text.all():
        return "some classes have no name to read (only pictures)"
    if method == "prototype" and (task.counts() == 0).any():
        return "some classes have no example pictures (only a name)"
    return None


# ---------------------------------------------------------------- fitting one head
def _logistic_start(task: Task, idx: np.ndarray) -> np.ndarray:
    protos = prototypes(task.x[idx], task.y[idx], task.n_classes)
    return task.scale * np.where(task.has_text[:, None], task.text_vecs, protos)


def fit_logistic(task: Task, idx: np.ndarray, l2: float, start: LogRegFit | None = None) -> LogRegFit:
    w0 = _logistic_start(task, idx)
    return fit_softmax(task.x[idx], task.y[idx], task.n_classes, l2 / task.scale ** 2, w0=w0, start=start,
                       tol=1e-5)


def example_bridge(task: Task, tr: np.ndarray, beta: float) -> list[float] | None:
    """The text/evidence lines of `fit_bridge` from the examples `tr` (each left out of the cache)."""
    has_examples = task.counts(tr) > 0
    if task.has_text.all() and has_examples.all():
        return None                      # nothing to predict
    x = task.x[tr].astype(np.float64)
    evidence = cache_evidence(x @ x.T, np.eye(task.n_classes)[task.y[tr]], beta, leave_out=True)
    return fit_bridge(x @ task.text_vecs.T, evidence, task.has_text & has_examples)


def fit_head(task: Task, method: str, settings: dict) -> Head:
    """`method` with `settings` fitted on all of `task`'s examples."""
    everything = np.arange(len(task.y))
    if method == "text":
        return Head(method, {}, {"class_vecs": task.text_vecs.astype(np.float32)}, task.scale)
    if method == "prototype":
        return Head(method, {}, {"class_vecs": prototypes(task.x, task.y, task.n_classes).astype(np.float32)},
                    task.scale)
    if method == "tip":
        return Head(method, {"alpha": settings["alpha"], "beta": settings["beta"],
                             "bridge": example_bridge(task, everything, settings["beta"])},
                    {"class_vecs": task.text_vecs.astype(np.float32), "has_text": task.has_text.astype(np.uint8),
                     "cache_vecs": task.x.astype(np.float32), "cache_labels": task.y.astype(np.int64)},
                    task.scale)
    if method == "logistic":
        fit = fit_logistic(task, everything, settings["l2"])
        return Head(method, {"l2": settings["l2"], "iterations": fit.iterations},
                    {"weights": fit.weights.astype(np.float32), "bias": fit.bias.astype(np.float32)}, task.scale)
    raise ValueError(method)
