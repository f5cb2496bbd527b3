"""Few-shot evaluation (pure functions over vectors, as metrics.py): a fitted classifier scored on the
evaluated split, and few-shot curves (k examples per class drawn from the train split, several seeds,
every method) beside the zero-shot line. run.py embeds the splits and builds the rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from clipseek.errors import UsageError
from clipseek.fewshot.anomaly import detection_metrics
from clipseek.fewshot.classifier import FewShotClassifier, fit_classifier
from clipseek.fewshot.conformal import set_metrics
from clipseek.fewshot.examples import ExampleSet
from clipseek.fewshot.methods import METHODS

DEFAULT_SHOTS = (1, 2, 4, 8, 16)


@dataclass
class FewShotOptions:
    """`eval`'s few-shot options: a classifier to score (`examples` fitted now, or a `classifier`
    file) and/or the `shots` of the curves (`seeds` draws each)."""
    examples: str | None = None
    classifier: str | None = None
    method: str = "auto"
    coverage: float | None = None
    false_alarm: float | None = None
    shots: tuple[int, ...] = ()
    seeds: int = 3

    @property
    def scores_a_classifier(self) -> bool:
        return self.examples is not None or self.classifier is not None

    def curves_doc(self, rows: list[dict]) -> dict:
        """The report's `fewshot_curves`."""
        return {"shots": list(self.shots), "seeds": self.seeds, "coverage_target": self.coverage, "rows": rows}


def parse_shots(text: str) -> tuple[int, ...]:
    """"1,2,4,8,16" -> (1, 2, 4, 8, 16); UsageError for anything but positive integers."""
    try:
        shots = tuple(sorted({int(s) for s in text.split(",") if s.strip()}))
    except ValueError:
        raise UsageError(f"--shots takes counts of examples per class such as 1,2,4,8,16, not {text!r}") from None
    if not shots or shots[0] < 1:
        raise UsageError(f"--shots takes positive counts of examples per class, not {text!r}")
    return shots


def column_order(clf: FewShotClassifier, classes: Sequence[str]) -> np.ndarray:
    """For each of DATA's classes, the classifier's column; UsageError when the class lists differ."""
    mine = {c: i for i, c in enumerate(clf.classes)}
    unknown = [c for c in classes if c not in mine]
    extra = [c for c in clf.classes if c not in set(classes)]
    if unknown or extra:
        parts = ([f"not classes of the classifier: {', '.join(unknown)}"] if unknown else []) + \
                ([f"not classes of DATA: {', '.join(extra)}"] if extra else [])
        raise UsageError(f"the classifier's classes ({', '.join(clf.classes)}) are not DATA's; " + "; ".join(parts))
    return np.array([mine[c] for c in classes], np.int64)


def fitted_metrics(clf: FewShotClassifier, vectors: np.ndarray, y: np.ndarray,
                   classes: Sequence[str]) -> tuple[np.ndarray | None, dict]:
    """(probabilities in DATA's class order, or None for a one-class classifier; the few-shot metrics:
    coverage and mean set size, or the false-alarm and detection rates)."""
    out = clf.predict(vectors)
    extra: dict = {}
    if clf.kind == "one-class":
        normal = clf.classes[0]
        if normal not in classes:
            raise UsageError(f"the classifier's class {normal!r} is not a class of DATA ({', '.join(classes)})")
        extra = {"false_alarm_target": clf.anomaly.false_alarm,
                 **detection_metrics(out.unusual, np.asarray(y) == list(classes).index(normal))}
        return None, extra
    order = column_order(clf, classes)
    if out.sets is not None:
        extra = {"coverage_target": clf.conformal.coverage, **set_metrics(out.sets, order[np.asarray(y)])}
    if out.unusual is not None:
        extra["flagged_unusual"] = float(out.unusual.mean()) if len(y) else None
    return out.probs[:, order], extra


def _draw(y: np.ndarray, n_classes: int, k: int, rng: np.random.RandomState) -> np.ndarray:
    idx = [rng.permutation(np.flatnonzero(y == c))[:k] for c in range(n_classes)]
    return np.sort(np.concatenate(idx)).astype(np.int64)


def _score(clf: FewShotClassifier, x: np.ndarray, y: np.ndarray) -> dict:
    out = clf.predict(x)
    m = {"top1": float((out.probs.argmax(axis=1) == y).mean()) if len(y) else 0.0}
    if out.sets is not None:
        m.update({k: v for k, v in set_metrics(out.sets, y).items() if k in ("coverage", "mean_set_size")})
    return m


def curves(base: ExampleSet, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
           shots: Sequence[int], seeds: int = 3, coverage: float | None = None,
           zero_shot_top1: float | None = None) -> list[dict]:
    """One row per (method, shots): top-1 (and coverage, mean set size) on `test`, the mean over
    `seeds` draws of `shots` examples per class from `train` (all of a class's when it has fewer).
    `auto` is, per draw, the method with the best cross-validated accuracy. `base` holds the classes,
    text vectors and the calibration split (if any)."""
    rows = [{"method": "zero-shot", "shots": 0, "seeds": None, "top1": zero_shot_top1}]
    if coverage is not None:
        rows[0].update(coverage=None, mean_set_size=None)
    for k in shots:
        runs: dict[str, list] = {m: [] for m in (*METHODS, "auto")}
        notes: dict[str, str] = {}
        for seed in range(seeds):
            idx = _draw(train[1], len(base.classes), k, np.random.RandomState(1000 * seed + k))
            ex = ExampleSet(base.classes, base.texts, base.text_vecs, train[0][idx], train[1][idx], base.scale,
                            base.fingerprint, base.calibration)
            cv = {}
            for m in METHODS:
                try:
                    clf = _fit(ex, m, coverage, seed, notes)
                except UsageError as e:   # the method does not apply (a class without a name, ...)
                    notes[m] = str(e)
                    continue
                runs[m].append(_score(clf, *test))
                cv[m] = clf.selection["methods"][m]["accuracy"]
            if cv:
                runs["auto"].append(runs[max(cv, key=cv.get)][-1])
        rows += [_aggregate(m, k, r, notes.get(m), coverage) for m, r in runs.items()]
    return rows


def _fit(ex: ExampleSet, method: str, coverage: float | None, seed: int, notes: dict) -> FewShotClassifier:
    """Fit with `coverage`; with too few examples to calibrate it, fit without and say so in `notes`."""
    try:
        return fit_classifier(ex, method, coverage, seed=seed)
    except UsageError as e:
        if coverage is None or not str(e).startswith("too few calibration examples"):
            raise
        notes[method] = str(e).split(" (")[0]
        return fit_classifier(ex, method, None, seed=seed)


def _aggregate(method: str, k: int, runs: list[dict], note: str | None, coverage) -> dict:
    row = {"method": method, "shots": k, "seeds": len(runs),
           "top1": float(np.mean([r["top1"] for r in runs])) if runs else None,
           "top1_sd": float(np.std([r["top1"] for r in runs])) if runs else None}
    if coverage is not None:
        for key in ("coverage", "mean_set_size"):
            got = [r[key] for r in runs if key in r]
            row[key] = float(np.mean(got)) if got else None
    if note:
        row["note"] = note
    return row
