"""A fitted few-shot classifier, and `fit_classifier`: examples -> method, temperature, conformal
threshold, anomaly threshold. Nothing here reads files or prints.

Fitting, in order:
1. With `coverage`, the calibration examples are set aside first (a validation split of EXAMPLES, else a
   random quarter of the examples, more if the coverage needs more, never a class's last example and
   never more than half): nothing below sees them until step 5.
2. Every setting of the method (every method for `auto`) is scored by K-fold accuracy on the rest
   (`methods.cross_validate`); the best is kept and `selection` records the scores and why.
3. A temperature T is fitted on the winner's out-of-fold logits (no example scored by a head that saw it).
4. The winner is fitted on all the fitting examples; probabilities are softmax(logits / T) over the
   classes (also for SigLIP models: a fitted classifier picks one of its classes).
5. Conformal: RAPS's penalty is chosen on the out-of-fold probabilities, the threshold on the held-out
   calibration examples (`conformal.py`). Anomaly (`anomaly.py`): all examples are the reference.
With one class there is nothing to classify: the classifier only flags images unlike the examples.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from clipseek.core.scores import fit_temperature, softmax
from clipseek.errors import ModelMismatchError, UsageError
from clipseek.fewshot import conformal as cp
from clipseek.fewshot.anomaly import Anomaly, calibrate_anomaly, check_false_alarm, flag, knn_scores
from clipseek.fewshot.examples import ExampleSet
from clipseek.fewshot.methods import METHODS, Head, Task, fit_head
from clipseek.fewshot.selection import cross_validate
from clipseek.model.fingerprint import Fingerprint

CALIBRATION_SHARE = 0.25


@dataclass
class Output:
    probs: np.ndarray                         # (N, C): softmax(logits / T); (N, 1) ones for one class
    sets: list[np.ndarray] | None = None      # conformal sets: class indices, best first
    anomaly: np.ndarray | None = None         # (N,) kNN distance to the examples
    unusual: np.ndarray | None = None         # (N,) anomaly > threshold


@dataclass
class FewShotClassifier:
    classes: list[str]
    texts: list[str | None]
    fingerprint: str
    head: Head | None                 # None: one class (anomaly only)
    temperature: float = 1.0
    conformal: cp.Conformal | None = None
    anomaly: Anomaly | None = None
    references: np.ndarray | None = None    # (R, D) the anomaly's example vectors
    selection: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "one-class" if self.head is None else "classes"

    @property
    def method(self) -> str:
        return "knn" if self.head is None else self.head.method

    def check_model(self, fingerprint: Fingerprint | str, source: str = "the classifier") -> None:
        """ModelMismatchError unless vectors of `fingerprint` may meet this classifier's."""
        mine, theirs = Fingerprint.parse(self.fingerprint), fingerprint
        theirs = Fingerprint.parse(theirs) if isinstance(theirs, str) else theirs
        if not mine.same_weights(theirs):
            raise ModelMismatchError(f"{source} was fitted with model {mine.name} ({self.fingerprint}); "
                                     f"these vectors come from {theirs.name} ({theirs}): fit it again "
                                     "with this model")

    @property
    def dim(self) -> int:
        a = self.head.arrays if self.head else {"references": self.references}
        return int(next(v for k, v in a.items() if v.ndim == 2).shape[1])

    def predict(self, vectors: np.ndarray) -> Output:
        x = np.asarray(vectors, np.float32)
        if x.ndim != 2 or (len(x) and x.shape[1] != self.dim):
            raise ModelMismatchError(f"vectors of dimension {x.shape[-1]}; the classifier takes {self.dim}")
        if self.head is None:
            out = Output(np.ones((len(x), 1)))
        else:
            out = Output(softmax(self.head.logits(x) / self.temperature))
            if self.conformal is not None:
                out.sets = cp.prediction_sets(out.probs, cp.tiebreak(x), self.conformal)
        if self.anomaly is not None:
            out.anomaly = knn_scores(x, self.references, self.anomaly.neighbours)
            out.unusual = flag(out.anomaly, self.anomaly)
        return out

    def describe(self) -> dict:
        """Everything but the arrays, as plain JSON values."""
        return {"kind": self.kind, "method": self.method,
                "settings": dict(self.head.settings) if self.head else {},
                "classes": [{"name": c, "text": t} for c, t in zip(self.classes, self.texts)],
                "fingerprint": self.fingerprint, "temperature": self.temperature,
                "conformal": self.conformal.to_dict() if self.conformal else None,
                "anomaly": self.anomaly.to_dict() if self.anomaly else None,
                "selection": self.selection, **self.info}


def hold_out(y: np.ndarray, coverage: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(fitting, calibration) indices: calibration a random CALIBRATION_SHARE of the examples (more
    when `coverage` needs more), at most half, never a class's last example."""
    rng = np.random.RandomState(seed)
    keep = {int(rng.choice(np.flatnonzero(y == c))) for c in np.unique(y)}   # one per class stays
    pool = rng.permutation([i for i in range(len(y)) if i not in keep])
    can = min(len(pool), len(y) // 2)
    need = cp.examples_needed(coverage)
    if can < need:
        raise UsageError(f"too few calibration examples for coverage {coverage:g}: need >= {need}, have "
                         f"{can} (at most half of the {len(y)} examples, and none that is the last of "
                         "its class, are held out; add examples, or a validation split, or lower --coverage)")
    n_cal = min(can, max(need, int(round(CALIBRATION_SHARE * len(y)))))
    cal = np.sort(pool[:n_cal]).astype(np.int64)
    return np.setdiff1d(np.arange(len(y)), cal), cal


def _selection_record(sel, method: str, n: int) -> dict:
    best = {}
    for m, c in sel.best.items():
        best[m] = {"accuracy": c.accuracy, "settings": c.settings}
        if c.name_only_accuracy is not None:
            best[m].update(kfold_accuracy=c.kfold_accuracy, name_only_accuracy=c.name_only_accuracy)
    ch = sel.chosen
    others = ", ".join(f"{m} {c.accuracy:.1%}" for m, c in sel.best.items() if m != ch.method)
    criterion = f"{sel.n_folds}-fold cross-validated accuracy on the {n} fitting examples"
    if sel.name_only_weight:
        criterion += (f", weighted {sel.name_only_weight:.0%} with the accuracy on whole classes left out "
                      "(as the classes known only by name are)")
    if method == "auto":
        why = f"auto: {ch.method} has the highest {criterion}, {ch.accuracy:.1%}" + (f" ({others})" if others else "")
    elif ch.settings:
        why = f"{ch.method} as asked; its settings chosen by {criterion} ({ch.accuracy:.1%})"
    else:
        why = f"{ch.method} as asked ({criterion}: {ch.accuracy:.1%})"
    return {"asked": method, "chosen": ch.method, "criterion": criterion, "why": why, "methods": best,
            "not_applicable": dict(sel.not_applicable)}


def _one_class(ex: ExampleSet, coverage, false_alarm) -> FewShotClassifier:
    if coverage is not None:
        raise UsageError("--coverage needs examples of at least two classes; with one class of normal "
                         "pictures use --false-alarm")
    rate = check_false_alarm(0.05 if false_alarm is None else false_alarm)
    refs = ex.x.astype(np.float32)
    an = calibrate_anomaly(refs, rate)
    return FewShotClassifier(ex.classes, ex.texts, ex.fingerprint, None, anomaly=an, references=refs,
                             selection={"asked": "knn", "chosen": "knn", "why": "one class: only the "
                                        "distance to its examples can be measured"},
                             info=_info(ex, len(ex.y), 0))  # the examples are their own calibration


def _info(ex: ExampleSet, n_fit: int, n_cal: int) -> dict:
    counts = ex.counts()
    return {"n_examples": int(n_fit + n_cal), "n_fitting": int(n_fit), "n_calibration": int(n_cal),
            "examples_per_class": {c: int(n) for c, n in zip(ex.classes, counts)},
            "source": ex.source, "templates": list(ex.templates)}


def fit_classifier(ex: ExampleSet, method: str = "auto", coverage: float | None = None,
                   false_alarm: float | None = None, seed: int = 0) -> FewShotClassifier:
    """Fit (see the module's docstring). UsageError for an unknown method, a method that does not
    apply, or too few (calibration) examples."""
    if method not in ("auto", *METHODS):
        raise UsageError(f"--method must be auto or one of {', '.join(METHODS)}, not {method!r}")
    if coverage is not None:
        cp.check_coverage(coverage)
    if len(ex.classes) == 1:
        return _one_class(ex, coverage, false_alarm)
    x, y = ex.x.astype(np.float32), ex.y
    cal_x = cal_y = None
    fit_idx = np.arange(len(y))
    if coverage is not None and ex.calibration is not None and len(ex.calibration[1]):
        cal_x, cal_y = ex.calibration
        cp.check_enough(len(cal_y), coverage)
    elif coverage is not None:
        fit_idx, cal_idx = hold_out(y, coverage, seed)
        cal_x, cal_y = x[cal_idx], y[cal_idx]
    task = Task(ex.text_vecs.astype(np.float64), ex.has_text, ex.scale, x[fit_idx], y[fit_idx])
    sel = cross_validate(task, method, seed)
    t = fit_temperature(sel.chosen.oof_logits, task.y)
    head = fit_head(task, sel.chosen.method, sel.chosen.settings)
    clf = FewShotClassifier(ex.classes, ex.texts, ex.fingerprint, head, temperature=t,
                            selection=_selection_record(sel, method, len(task.y)),
                            info=_info(ex, len(fit_idx), 0 if cal_y is None else len(cal_y)))
    if coverage is not None:
        oof = softmax(sel.chosen.oof_logits / t)
        lam, k_reg = cp.choose_penalty(oof, task.y, cp.tiebreak(task.x), coverage)
        cal_probs = softmax(head.logits(cal_x) / t)
        clf.conformal = cp.calibrate(cal_probs, cal_y, cp.tiebreak(cal_x), coverage, lam, k_reg)
    if false_alarm is not None:
        clf.references = x if cal_x is None else np.concatenate([x[fit_idx], cal_x]).astype(np.float32)
        clf.anomaly = calibrate_anomaly(clf.references, check_false_alarm(false_alarm))
    return clf
