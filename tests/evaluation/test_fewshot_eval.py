"""evaluation.fewshot_eval and the report's few-shot parts, on synthetic vectors (no model)."""

import numpy as np
import pytest

from clipseek.errors import UsageError
from clipseek.evaluation.fewshot_eval import column_order, curves, fitted_metrics, parse_shots
from clipseek.evaluation.fewshot_report import curve_table, curves_png
from clipseek.fewshot.classifier import fit_classifier
from gaussians import Task


def split(syn, n):
    return syn.sample(per_class=n)


def test_curves_rows_and_more_examples_help():
    syn = Task(n_classes=5, dim=32, separation=0.6, text_noise=3.0, seed=0)
    base = syn.examples(per_class=1)
    train, test = split(syn, 40), split(syn, 60)
    rows = curves(base, train, test, (1, 4, 16), seeds=2, coverage=0.8, zero_shot_top1=0.5)
    assert rows[0] == {"method": "zero-shot", "shots": 0, "seeds": None, "top1": 0.5, "coverage": None,
                       "mean_set_size": None}
    by = {(r["method"], r["shots"]): r for r in rows[1:]}
    assert set(by) == {(m, k) for m in ("text", "prototype", "tip", "logistic", "auto") for k in (1, 4, 16)}
    assert by[("prototype", 16)]["top1"] > by[("prototype", 1)]["top1"]
    assert by[("prototype", 1)]["coverage"] is None and "too few calibration examples" in by[("prototype", 1)]["note"]
    assert 0 < by[("tip", 16)]["coverage"] <= 1 and by[("tip", 16)]["seeds"] == 2
    assert by[("text", 16)]["top1"] == pytest.approx(by[("text", 1)]["top1"])      # text ignores the examples


def test_auto_is_the_best_cross_validated_method_of_each_draw():
    syn = Task(n_classes=4, dim=16, separation=0.8, seed=1)
    base = syn.examples(per_class=1)
    train, test = split(syn, 20), split(syn, 30)
    rows = {(r["method"], r["shots"]): r for r in curves(base, train, test, (8,), seeds=1)}
    from clipseek.evaluation.fewshot_eval import _draw

    idx = _draw(train[1], 4, 8, np.random.RandomState(8))
    ex = syn.examples(per_class=1)
    ex.x, ex.y = train[0][idx], train[1][idx]
    auto = fit_classifier(ex, "auto")
    assert rows[("auto", 8)]["top1"] == rows[(auto.method, 8)]["top1"]


def test_the_classes_must_match():
    syn = Task(n_classes=3, seed=2)
    clf = fit_classifier(syn.examples(per_class=4))
    np.testing.assert_array_equal(column_order(clf, ["class2", "class0", "class1"]), [2, 0, 1])
    with pytest.raises(UsageError, match=r"are not DATA's; not classes of the classifier: horse; "
                                         r"not classes of DATA: class2$"):
        column_order(clf, ["class0", "class1", "horse"])


def test_fitted_metrics_in_data_order_and_one_class():
    syn = Task(n_classes=3, separation=1.5, seed=3)
    clf = fit_classifier(syn.examples(per_class=12), coverage=0.8)
    x, y = syn.sample(per_class=20)
    probs, extra = fitted_metrics(clf, x, y, ["class0", "class1", "class2"])
    assert probs.shape == (60, 3) and set(extra) >= {"coverage_target", "coverage", "mean_set_size"}
    one = syn.examples(per_class=40)
    one.classes, one.texts, one.text_vecs = ["class0"], ["class0"], one.text_vecs[:1]
    one.x, one.y = one.x[one.y == 0], one.y[one.y == 0]
    det = fit_classifier(one, false_alarm=0.1)
    probs, extra = fitted_metrics(det, x, y, ["class0", "class1", "class2"])
    assert probs is None and extra["n_normal"] == 20 and extra["n_other"] == 40
    assert extra["detection_rate"] > 0.9 and extra["false_alarm_target"] == 0.1
    with pytest.raises(UsageError, match="the classifier's class 'class0' is not a class of DATA"):
        fitted_metrics(det, x, y, ["a", "b", "c"])


def test_parse_shots():
    assert parse_shots("16,1,2,2") == (1, 2, 16)
    for bad in ("", "0,1", "a,b", "-1"):
        with pytest.raises(UsageError, match="--shots"):
            parse_shots(bad)


def test_curve_table_and_plot(tmp_path):
    doc = {"fewshot_curves": {"shots": [1, 2], "seeds": 2, "coverage_target": 0.9, "rows": [
        {"model": "m", "method": "zero-shot", "shots": 0, "seeds": None, "top1": 0.5},
        {"model": "m", "method": "tip", "shots": 1, "top1": 0.6, "coverage": None, "mean_set_size": None},
        {"model": "m", "method": "tip", "shots": 2, "top1": 0.7, "coverage": 0.91, "mean_set_size": 1.5}]}}
    header, rows = curve_table(doc)
    assert header == ["model", "method", "1 shot", "2 shots"]
    assert rows == [["m", "zero-shot", "50.0%", "50.0%"], ["m", "tip", "60.0%", "70.0% (91.0% · 1.50)"]]
    curves_png(doc, tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 1000
