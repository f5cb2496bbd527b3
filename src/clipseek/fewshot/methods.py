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

Selection (`cross_validate`): stratified K-fold cross-validation over the examples (K <= 5), every
(method, setting) scored by its out-of-fold accuracy (with classes known only by name, mixed with the
accuracy on whole classes left out); `auto` takes the best over the methods that apply, ties going to
the simpler method (the order of METHODS) and the stronger prior (the order of the grids).
The out-of-fold logits of the winner are kept: the temperature and the conformal score are tuned on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from clipseek.errors import UsageError
from clipseek.fewshot.logreg import LogRegFit, fit_softmax

METHODS = ("text", "prototype", "tip", "logistic")
TIP_ALPHAS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)
TIP_BETAS = (0.5, 1.0, 2.0, 4.0, 7.0, 12.0)
# Penalty on ||(W - W0) / s||^2 (relative to the text classifier's size), strongest first.
LOGISTIC_L2 = (100.0, 10.0, 1.0, 0.1, 0.01, 0.001)
MAX_FOLDS = 5


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


def _fit_logistic(task: Task, idx: np.ndarray, l2: float, start: LogRegFit | None = None) -> LogRegFit:
    w0 = _logistic_start(task, idx)
    return fit_softmax(task.x[idx], task.y[idx], task.n_classes, l2 / task.scale ** 2, w0=w0, start=start,
                       tol=1e-5)


def _bridge(task: Task, tr: np.ndarray, beta: float) -> list[float] | None:
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
                             "bridge": _bridge(task, everything, settings["beta"])},
                    {"class_vecs": task.text_vecs.astype(np.float32), "has_text": task.has_text.astype(np.uint8),
                     "cache_vecs": task.x.astype(np.float32), "cache_labels": task.y.astype(np.int64)},
                    task.scale)
    if method == "logistic":
        fit = _fit_logistic(task, everything, settings["l2"])
        return Head(method, {"l2": settings["l2"], "iterations": fit.iterations},
                    {"weights": fit.weights.astype(np.float32), "bias": fit.bias.astype(np.float32)}, task.scale)
    raise ValueError(method)


# ---------------------------------------------------------------- cross-validation
@dataclass
class Candidate:
    method: str
    settings: dict
    oof_logits: np.ndarray       # (M, C): each example scored by a head fitted without its fold
    accuracy: float = 0.0        # the selection score (see cross_validate)
    kfold_accuracy: float = 0.0
    name_only_accuracy: float | None = None


@dataclass
class Selection:
    chosen: Candidate
    n_folds: int
    best: dict[str, Candidate] = field(default_factory=dict)     # best candidate per method
    not_applicable: dict[str, str] = field(default_factory=dict)
    name_only_weight: float = 0.0   # the weight of the left-out-class accuracy in the score


def stratified_folds(y: np.ndarray, k: int, seed: int = 0) -> list[np.ndarray]:
    """k disjoint test folds; each class's examples dealt round-robin from a rotating start."""
    rng = np.random.RandomState(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    offset = 0
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        for j, i in enumerate(members):
            folds[(offset + j) % k].append(int(i))
        offset += len(members)
    return [np.sort(np.array(f, np.int64)) for f in folds if f]


def _oof(task: Task, folds, score) -> np.ndarray:
    out = np.zeros((len(task.y), task.n_classes))
    for te in folds:
        tr = np.setdiff1d(np.arange(len(task.y)), te)
        out[te] = score(tr, te)
    return out


def _candidates(task: Task, method: str, folds) -> list[Candidate]:
    x, c = task.x.astype(np.float64), task.n_classes
    text = fill(task.scale * (x @ task.text_vecs.T), task.has_text)
    if method == "text":
        return [Candidate("text", {}, text)]
    if method == "prototype":
        def score(tr, te):
            return fill(task.scale * (x[te] @ prototypes(x[tr], task.y[tr], c).T), task.counts(tr) > 0)
        return [Candidate("prototype", {}, _oof(task, folds, score))]
    if method == "tip":
        gram, onehot, cos = x @ x.T, np.eye(c)[task.y], x @ task.text_vecs.T
        out = []
        for beta in TIP_BETAS:   # out-of-fold text and cache parts once per beta; alpha only weighs them
            tc, ev = np.zeros((len(task.y), c)), np.zeros((len(task.y), c))
            for te in folds:
                tr = np.setdiff1d(np.arange(len(task.y)), te)
                tc[te], ev[te] = bridged(cos[te], task.has_text, cache_evidence(gram[np.ix_(te, tr)], onehot[tr], beta),
                                         task.counts(tr) > 0, _bridge(task, tr, beta))
            out += [Candidate("tip", {"alpha": alpha, "beta": beta}, tip_blend(task.scale * tc, ev, alpha, task.scale))
                    for alpha in TIP_ALPHAS]
        return sorted(out, key=lambda k: (k.settings["alpha"], -k.settings["beta"]))
    if method == "logistic":
        logits = {l2: np.zeros((len(task.y), c)) for l2 in LOGISTIC_L2}
        for te in folds:
            tr, start = np.setdiff1d(np.arange(len(task.y)), te), None
            for l2 in LOGISTIC_L2:          # strongest penalty first, each fit starting from the last
                start = _fit_logistic(task, tr, l2, start)
                logits[l2][te] = x[te] @ start.weights.T + start.bias
        return [Candidate("logistic", {"l2": l2}, logits[l2]) for l2 in LOGISTIC_L2]
    raise ValueError(method)


def class_folds(task: Task, seed: int = 0) -> list[np.ndarray]:
    """Folds of whole classes (those with a name and examples): all of a class's examples are left
    out together, so the class is, while they are, known only by its name."""
    rng = np.random.RandomState(seed)
    both = rng.permutation(np.flatnonzero(task.has_text & (task.counts() > 0)))
    groups = [both[i::MAX_FOLDS] for i in range(min(MAX_FOLDS, len(both)))]
    return [np.flatnonzero(np.isin(task.y, g)) for g in groups if len(g)]


def _accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    return float((logits.argmax(axis=1) == y).mean()) if len(y) else 0.0


def cross_validate(task: Task, method: str = "auto", seed: int = 0) -> Selection:
    """Score every setting of `method` (every method for "auto") by K-fold out-of-fold accuracy.

    When some classes are known only by name, K-fold accuracy says nothing about them (they have no
    example to score), and methods fitted on pictures tend to take their images for look-alike classes
    that have pictures. So the score is then the class-weighted mean of the K-fold accuracy (over the
    classes with examples) and the accuracy on whole classes left out as if known only by name."""
    k = int(min(MAX_FOLDS, len(task.y)))
    folds = stratified_folds(task.y, k, seed)
    n_named_only = int((task.has_text & (task.counts() == 0)).sum())
    by_class = class_folds(task, seed) if n_named_only else []
    weight = n_named_only / (n_named_only + int((task.counts() > 0).sum()))
    wanted = METHODS if method == "auto" else (method,)
    sel = Selection(chosen=None, n_folds=len(folds), name_only_weight=weight if by_class else 0.0)  # type: ignore[arg-type]
    for m in wanted:
        why = applicable(m, task)
        if why:
            sel.not_applicable[m] = why
            continue
        cands = _candidates(task, m, folds)
        for cand in cands:
            cand.accuracy = cand.kfold_accuracy = _accuracy(cand.oof_logits, task.y)
        if by_class:
            left = np.concatenate(by_class)
            for cand, out in zip(cands, _candidates(task, m, by_class)):
                cand.name_only_accuracy = _accuracy(out.oof_logits[left], task.y[left])
                cand.accuracy = (1 - weight) * cand.kfold_accuracy + weight * cand.name_only_accuracy
        sel.best[m] = max(cands, key=lambda cand: cand.accuracy)   # max keeps the first of equals
    if not sel.best:
        raise UsageError(f"method {method!r} does not apply: {sel.not_applicable[method]}")
    sel.chosen = max(sel.best.values(), key=lambda cand: cand.accuracy)
    return sel
