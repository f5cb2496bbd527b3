"""Choosing a method and its settings by cross-validation on the examples.

Stratified K-fold cross-validation (K <= 5): every (method, setting) is scored by its out-of-fold
accuracy; with classes known only by name, that is mixed with the accuracy on whole classes left out
(`cross_validate`). `auto` takes the best over the methods that apply, ties going to the simpler method
(the order of METHODS) and the stronger prior (the order of the grids). The winner's out-of-fold logits
are kept: the temperature and the conformal score are tuned on them, never on the calibration examples.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from clipseek.errors import UsageError
from clipseek.fewshot.methods import (
    LOGISTIC_L2,
    METHODS,
    TIP_ALPHAS,
    TIP_BETAS,
    Task,
    example_bridge,
    fit_logistic,
    applicable,
    bridged,
    cache_evidence,
    fill,
    prototypes,
    tip_blend,
)

MAX_FOLDS = 5

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
                                         task.counts(tr) > 0, example_bridge(task, tr, beta))
            out += [Candidate("tip", {"alpha": alpha, "beta": beta}, tip_blend(task.scale * tc, ev, alpha, task.scale))
                    for alpha in TIP_ALPHAS]
        return sorted(out, key=lambda k: (k.settings["alpha"], -k.settings["beta"]))
    if method == "logistic":
        logits = {l2: np.zeros((len(task.y), c)) for l2 in LOGISTIC_L2}
        for te in folds:
            tr, start = np.setdiff1d(np.arange(len(task.y)), te), None
            for l2 in LOGISTIC_L2:          # strongest penalty first, each fit starting from the last
                start = fit_logistic(task, tr, l2, start)
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
