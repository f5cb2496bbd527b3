"""Calibration under the model's own rule (softmax or SigLIP's sigmoid), fitted only where it can be
trusted (a validation split, else cross-fitting; never the train split), and said how in the report."""

import numpy as np
import pytest
from PIL import Image

from clipseek.core.scores import sigmoid
from clipseek.evaluation import metrics as ev
from clipseek.evaluation.report import calibration_text, summary_table
from clipseek.evaluation.run import companion_splits, resolve_prompt_sets, run_eval


def test_binary_nll_is_the_mean_pairwise_log_loss():
    z = np.array([[2.0, -1.0, 0.5], [-3.0, 0.0, 4.0]])
    y = np.array([0, 2])
    t = np.eye(3)[y]
    p = 1 / (1 + np.exp(-z))
    ref = -(t * np.log(p) + (1 - t) * np.log(1 - p)).mean()
    assert ev.binary_nll(z, y) == pytest.approx(ref)
    assert np.isfinite(ev.binary_nll(np.array([[1e4, -1e4]]), np.array([1])))  # no overflow


def test_sigmoid_temperature_minimises_the_binary_nll_and_recovers_a_known_one():
    rng = np.random.RandomState(0)
    n, c = 3000, 4
    true = rng.randn(n, c) * 2 - 1.5
    y = np.array([rng.choice(c, p=p / p.sum()) for p in sigmoid(true)])
    t = ev.fit_temperature(true * 3, y, rule="sigmoid")
    loss = lambda tt: ev.binary_nll(true * 3 / tt, y)  # noqa: E731
    assert loss(t) <= min(loss(t * 1.05), loss(t / 1.05))
    assert t == pytest.approx(ev.fit_temperature(true, y, rule="sigmoid") * 3, rel=1e-3)
    cal = ev.calibration(true * 3, y, rule="sigmoid")
    assert cal["scoring"] == "sigmoid"
    assert cal["ece_before"] == pytest.approx(ev.expected_calibration_error(sigmoid(true * 3), y))
    assert cal["improves"] == (cal["ece_after"] < cal["ece_before"])


def test_report_says_how_t_was_fitted_and_when_it_does_not_help():
    row = {"calibration": {"temperature": 0.01, "ece_before": 0.007, "ece_after": 0.013, "scoring": "softmax",
                           "fitted_on": "2-fold cross-fit on the evaluated split", "improves": False},
           "none_of_these": {"threshold": 0.031, "score": "probability", "detects": "mistakes",
                             "fitted_on": "evaluated split (in-sample)", "precision": 0.5, "recall": 0.5}}
    text = calibration_text(row)
    assert "2-fold cross-fit on the evaluated split" in text and "does not improve calibration" in text
    assert "below probability 0.031" in text
    row["calibration"].update(ece_after=0.002, improves=True)
    assert "does not improve" not in calibration_text(row)


def split_folder(root, splits):
    colours = {"red": (220, 30, 30), "blue": (30, 40, 220)}
    for split in splits:
        for c, rgb in colours.items():
            (root / split / c).mkdir(parents=True)
            for i in range(4):
                a = np.clip(np.array(rgb)[None, None] + np.random.RandomState(i).randn(20, 24, 3) * 20, 0, 255)
                Image.fromarray(a.astype(np.uint8)).save(root / split / c / f"{i}.png")
    return str(root)


def test_never_fitted_on_train(encoder, tmp_path):
    from clipseek.data.load import load_labelled

    with_val = split_folder(tmp_path / "a", ["train", "validation", "test"])
    assert companion_splits(load_labelled(with_val, "test")) == ("train", "validation")
    doc = run_eval(with_val, ["tiny"], lambda m: encoder, resolve_prompt_sets(), probe=False)
    assert doc["rows"][0]["calibration"]["fitted_on"] == "split 'validation'"
    only_train = split_folder(tmp_path / "b", ["train", "test"])
    assert companion_splits(load_labelled(only_train, "test")) == ("train", None)
    doc = run_eval(only_train, ["tiny"], lambda m: encoder, resolve_prompt_sets(), probe=False)
    assert doc["rows"][0]["calibration"]["fitted_on"] == "2-fold cross-fit on the evaluated split"


def test_siglip_eval_uses_the_model_own_probabilities(siglip_encoder, tmp_path):
    from clipseek.core.images import open_image
    from clipseek.zero_shot import classify

    data = split_folder(tmp_path / "s", ["test"])
    doc = run_eval(data, ["siglip"], lambda m: siglip_encoder, resolve_prompt_sets(), probe=False)
    row = doc["rows"][0]
    assert row["scoring"] == "sigmoid" and row["calibration"]["scoring"] == "sigmoid"
    classes = doc["dataset"]["classes"]
    paths = [f"{data}/test/{c}/{i}.png" for c in classes for i in range(4)]
    probs = classify(siglip_encoder, [open_image(p) for p in paths], doc["dataset"]["label_texts"]).probs
    y = np.repeat(np.arange(len(classes)), 4)
    assert row["metrics"]["ece"] == pytest.approx(ev.expected_calibration_error(probs, y), abs=1e-6)
    assert row["calibration"]["ece_before"] == pytest.approx(row["metrics"]["ece"], abs=1e-6)
    none = row["none_of_these"]
    assert none["score"] == "probability" and (none["threshold"] is None or 0 <= none["threshold"] <= 1)
    assert summary_table(doc)[1][0][-1].startswith(("p ", "–"))
