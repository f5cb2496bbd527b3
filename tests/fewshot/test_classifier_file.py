"""fewshot.classifier_file: a fitted classifier round-trips through its file, and a file refuses the
vectors of another model. (Hostile files: tests/hardening/test_fewshot_file.py.)"""

import numpy as np
import pytest

from clipseek.errors import ModelMismatchError
from clipseek.fewshot.classifier import fit_classifier
from clipseek.fewshot.classifier_file import load_classifier, save_classifier
from clipseek.fewshot.examples import ExampleSet
from clipseek.model.fingerprint import Fingerprint
from gaussians import FP, OTHER_FP, Task


@pytest.mark.parametrize("method", ["text", "prototype", "tip", "logistic"])
def test_round_trip(tmp_path, method):
    syn = Task(n_classes=4, separation=0.5, seed=1)
    clf = fit_classifier(syn.examples(per_class=12), method, coverage=0.8, false_alarm=0.1)
    save_classifier(clf, tmp_path / "c.npz")
    back = load_classifier(tmp_path / "c.npz")
    q, _ = syn.sample(50)
    a, b = clf.predict(q), back.predict(q)
    np.testing.assert_array_equal(a.probs, b.probs)
    assert [s.tolist() for s in a.sets] == [s.tolist() for s in b.sets]
    np.testing.assert_array_equal(a.unusual, b.unusual)
    assert back.describe() == clf.describe()
    assert (tmp_path / "c.npz").stat().st_size < 64_000


def test_one_class_round_trip(tmp_path):
    syn = Task(seed=2)
    x, _ = syn.sample(per_class=30, classes=[0])
    clf = fit_classifier(ExampleSet(["ok"], ["ok"], syn.text[:1], x, np.zeros(30, np.int64), 25.0, FP))
    save_classifier(clf, tmp_path / "one.npz")
    back = load_classifier(tmp_path / "one.npz")
    q, _ = syn.sample(40)
    np.testing.assert_array_equal(back.predict(q).anomaly, clf.predict(q).anomaly)
    assert back.kind == "one-class" and back.anomaly == clf.anomaly


def test_a_loaded_file_refuses_another_model(tmp_path):
    save_classifier(fit_classifier(Task().examples(per_class=4)), tmp_path / "c.npz")
    back = load_classifier(tmp_path / "c.npz")
    back.check_model(Fingerprint.parse(FP))
    with pytest.raises(ModelMismatchError) as e:
        back.check_model(Fingerprint.parse(OTHER_FP), str(tmp_path / "c.npz"))
    assert "\n" not in str(e.value) and "was fitted with model fake-clip" in str(e.value)
