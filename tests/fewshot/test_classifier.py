"""fewshot.classifier: fitting end to end on synthetic vectors: the calibration examples are held out,
coverage holds through the whole pipeline, auto records why, one class flags the unusual."""

import numpy as np
import pytest

from clipseek.errors import ModelMismatchError, UsageError
from clipseek.fewshot import conformal as cp
from clipseek.fewshot.classifier import fit_classifier, hold_out
from clipseek.fewshot.examples import ExampleSet
from clipseek.model.fingerprint import Fingerprint
from gaussians import FP, OTHER_FP, Task


def test_hold_out_keeps_a_fitting_example_of_every_class_and_at_most_half():
    y = np.repeat(np.arange(5), [1, 2, 10, 10, 17])
    fit, cal = hold_out(y, 0.9, seed=3)
    assert not set(fit) & set(cal) and len(fit) + len(cal) == len(y)
    assert set(y[fit]) == set(range(5)) and cp.examples_needed(0.9) <= len(cal) <= len(y) // 2


def test_too_few_examples_for_the_coverage():
    ex = Task(n_classes=3).examples(per_class=4)
    with pytest.raises(UsageError, match=r"^too few calibration examples for coverage 0.95: need >= 19, have 6 "):
        fit_classifier(ex, coverage=0.95)


def test_coverage_through_the_whole_fit():
    """40 independent tasks, each: fit on 60 examples per class (a quarter held out), then the test
    images' coverage. Mean within [target - 0.02, target + 1/(n+1) + 0.02]. (Prototypes, to keep it
    fast: the guarantee does not depend on the method.)"""
    cov, size = [], []
    for seed in range(40):
        syn = Task(n_classes=6, dim=32, separation=0.3, text_noise=1.0, seed=seed)
        clf = fit_classifier(syn.examples(per_class=60), "prototype", coverage=0.9, seed=seed)
        x, y = syn.sample(600)
        m = cp.set_metrics(clf.predict(x).sets, y)
        cov.append(m["coverage"])
        size.append(m["mean_set_size"])
    n = clf.conformal.n_calibration
    assert 0.9 - 0.02 <= np.mean(cov) <= 0.9 + 1 / (n + 1) + 0.02
    assert np.mean(size) > 1.2


def test_sets_shrink_as_the_examples_separate():
    sizes = []
    for sep in (0.2, 0.3, 0.45):
        syn = Task(n_classes=6, dim=32, separation=sep, seed=1)
        clf = fit_classifier(syn.examples(per_class=40), coverage=0.9)
        x, y = syn.sample(1000)
        sizes.append(cp.set_metrics(clf.predict(x).sets, y)["mean_set_size"])
    assert sizes[0] > sizes[1] > sizes[2]


def test_auto_records_why_and_the_temperature_is_fitted():
    syn = Task(n_classes=4, separation=1.0, text_noise=50.0, seed=2)      # names that mislead
    clf = fit_classifier(syn.examples(per_class=10))
    sel = clf.selection
    assert sel["asked"] == "auto" and sel["chosen"] == clf.method != "text"
    assert set(sel["methods"]) == {"text", "prototype", "tip", "logistic"}
    best = max(v["accuracy"] for v in sel["methods"].values())
    assert sel["methods"][clf.method]["accuracy"] == best
    assert sel["why"].startswith(f"auto: {clf.method} has the highest 5-fold cross-validated accuracy")
    assert clf.temperature != 1.0 and clf.describe()["selection"] == sel


def test_a_validation_split_is_the_calibration_set():
    syn = Task(n_classes=3, seed=4)
    cal = syn.sample(per_class=10)
    clf = fit_classifier(syn.examples(per_class=5, calibration=cal), coverage=0.9)
    assert clf.conformal.n_calibration == 30 and clf.info["n_fitting"] == 15


def test_text_and_pictures_mixed():
    """Class 0 has only a name (no example); class 1 only pictures (no name); the others both."""
    syn = Task(n_classes=4, separation=1.2, text_noise=0.3, seed=5)
    x, y = syn.sample(per_class=8, classes=[1, 2, 3])
    texts = [None if c == 1 else f"class{c}" for c in range(4)]
    tv = np.where(np.array([t is not None for t in texts])[:, None], syn.text, 0).astype(np.float32)
    ex = ExampleSet([f"class{c}" for c in range(4)], texts, tv, x, y, 25.0, FP)
    clf = fit_classifier(ex)
    assert set(clf.selection["not_applicable"]) == {"text", "prototype"}
    q, qy = syn.sample(per_class=50)
    pred = clf.predict(q).probs.argmax(axis=1)
    for c in range(4):
        assert (pred[qy == c] == c).mean() > 0.6


def test_one_class_flags_the_unusual():
    syn = Task(n_classes=3, seed=6)
    x, _ = syn.sample(per_class=60, classes=[0])
    ex = ExampleSet(["normal"], ["normal"], syn.text[:1], x, np.zeros(60, np.int64), 25.0, FP)
    clf = fit_classifier(ex, false_alarm=0.1)
    assert clf.kind == "one-class" and clf.method == "knn" and clf.anomaly.false_alarm == 0.1
    normal, _ = syn.sample(per_class=500, classes=[0])
    other, _ = syn.sample(per_class=250, classes=[1, 2])
    assert clf.predict(normal).unusual.mean() <= 0.15 and clf.predict(other).unusual.mean() >= 0.9
    with pytest.raises(UsageError, match="--coverage needs examples of at least two classes"):
        fit_classifier(ex, coverage=0.9)


def test_refuses_another_models_vectors():
    clf = fit_classifier(Task().examples(per_class=4))
    clf.check_model(Fingerprint.parse(FP))
    with pytest.raises(ModelMismatchError, match=r"^the classifier was fitted with model fake-clip .*"
                                                 r"these vectors come from other-clip .*fit it again"):
        clf.check_model(Fingerprint.parse(OTHER_FP))
    with pytest.raises(ModelMismatchError, match="vectors of dimension 8; the classifier takes 32"):
        clf.predict(np.zeros((2, 8), np.float32))


def test_bad_arguments():
    ex = Task().examples(per_class=4)
    with pytest.raises(UsageError, match="--method must be auto or one of text, prototype, tip, logistic"):
        fit_classifier(ex, method="svm")
    with pytest.raises(UsageError, match="--coverage must be a probability"):
        fit_classifier(ex, coverage=1.5)
