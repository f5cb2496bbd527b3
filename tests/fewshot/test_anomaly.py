"""fewshot.anomaly: the kNN distance against a direct loop; the conformal threshold holds its
false-alarm rate on held-out normal vectors; what is unlike the examples is detected."""

import numpy as np
import pytest

from clipseek.errors import UsageError
from clipseek.fewshot.anomaly import calibrate_anomaly, detection_metrics, flag, knn_scores
from gaussians import Task


def normal_and_other(seed=0):
    syn = Task(n_classes=4, dim=32, separation=1.0, seed=seed)
    return (lambda n: syn.sample(n, classes=[0, 1])[0]), (lambda n: syn.sample(n, classes=[2, 3])[0])


def test_knn_scores_against_a_direct_loop():
    normal, _ = normal_and_other()
    refs, q = normal(30), normal(7)
    for k in (1, 3):
        want = [1 - np.mean(sorted(refs.astype(float) @ v, reverse=True)[:k]) for v in q.astype(float)]
        np.testing.assert_allclose(knn_scores(q, refs, k), want, rtol=1e-5)
        loo = [1 - np.mean(sorted(np.delete(refs, i, 0).astype(float) @ refs[i], reverse=True)[:k])
               for i in range(len(refs))]
        np.testing.assert_allclose(knn_scores(refs, refs, k, leave_one_out=True), loo, rtol=1e-5)


@pytest.mark.parametrize("rate,n_ref", [(0.05, 100), (0.1, 200)])
def test_false_alarm_rate_holds_on_held_out_normal_vectors(rate, n_ref):
    """Over 80 independent draws of the examples (80 tasks), the mean rate of normal images flagged is
    <= the target (+0.01 of Monte-Carlo room: the standard error is ~0.003) and not far below it
    (leave-one-out is only a little conservative)."""
    rates = []
    for seed in range(80):
        normal, _ = normal_and_other(seed)
        refs = normal(n_ref)
        an = calibrate_anomaly(refs, rate)
        rates.append(flag(knn_scores(normal(1000), refs, an.neighbours), an).mean())
    assert rate - 0.015 <= np.mean(rates) <= rate + 0.01


def test_unlike_pictures_are_detected():
    normal, other = normal_and_other()
    refs = normal(200)
    an = calibrate_anomaly(refs, 0.05)
    unusual = flag(knn_scores(np.concatenate([normal(500), other(500)]), refs, an.neighbours), an)
    m = detection_metrics(unusual, np.r_[np.ones(500, bool), np.zeros(500, bool)])
    assert m["false_alarm"] <= 0.1 and m["detection_rate"] >= 0.95


def test_too_few_examples_for_the_rate():
    normal, _ = normal_and_other()
    with pytest.raises(UsageError,
                       match=r"^too few calibration examples for false-alarm rate 0.05: need >= 19, have 10$"):
        calibrate_anomaly(normal(10), 0.05)
    assert calibrate_anomaly(normal(19), 0.05).n_reference == 19
