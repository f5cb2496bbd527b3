"""fewshot.selection: the folds, out-of-fold scores, and how `auto` chooses."""

import numpy as np
import pytest

from clipseek.errors import UsageError
from clipseek.fewshot.methods import LOGISTIC_L2, TIP_ALPHAS, TIP_BETAS
from clipseek.fewshot.selection import class_folds, cross_validate, stratified_folds
from gaussians import S, task, unit


def test_stratified_folds_partition_and_balance():
    y = np.repeat(np.arange(3), [7, 5, 1])
    folds = stratified_folds(y, 5, seed=1)
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(y)))
    for c in range(3):
        per_fold = [int((y[f] == c).sum()) for f in folds]
        assert max(per_fold) - min(per_fold) <= 1


def test_cross_validation_scores_are_out_of_fold():
    """The prototype candidate's out-of-fold logits: each example scored by the prototypes of the
    other folds (recomputed here directly)."""
    t, syn = task(per_class=5)
    sel = cross_validate(t, "prototype")
    folds = stratified_folds(t.y, 5)
    for te in folds:
        tr = np.setdiff1d(np.arange(len(t.y)), te)
        protos = unit(np.stack([t.x[tr][t.y[tr] == c].mean(axis=0) for c in range(4)]))
        np.testing.assert_allclose(sel.chosen.oof_logits[te], S * t.x[te] @ protos.T, rtol=1e-4)
    assert sel.chosen.accuracy == pytest.approx((sel.chosen.oof_logits.argmax(1) == t.y).mean())


def test_grids_are_searched():
    t, _ = task()
    sel = cross_validate(t, "tip")
    assert sel.chosen.settings["alpha"] in TIP_ALPHAS and sel.chosen.settings["beta"] in TIP_BETAS
    assert cross_validate(t, "logistic").chosen.settings["l2"] in LOGISTIC_L2


def test_auto_prefers_examples_when_the_names_mislead():
    t, syn = task(per_class=8, text_noise=50.0, separation=2.0)     # text vectors: nearly random
    sel = cross_validate(t, "auto")
    assert sel.best["text"].accuracy < 0.6
    assert sel.chosen.method != "text" and sel.chosen.accuracy >= 0.9
    assert sel.chosen.accuracy == max(c.accuracy for c in sel.best.values())


def test_auto_keeps_the_text_when_it_is_already_right():
    t, syn = task(per_class=2, text_noise=0.0, separation=0.5)      # the names are the centres
    sel = cross_validate(t, "auto")
    assert sel.best["text"].accuracy == sel.chosen.accuracy


def test_methods_that_do_not_apply():
    t, _ = task(texts_present=[1, 0, 1, 1])
    sel = cross_validate(t, "auto")
    assert "text" in sel.not_applicable and "text" not in sel.best
    with pytest.raises(UsageError, match="method 'text' does not apply: some classes have no name"):
        cross_validate(t, "text")
    t, _ = task(classes=[0, 1, 2])
    with pytest.raises(UsageError, match="'prototype' does not apply: some classes have no example"):
        cross_validate(t, "prototype")


def test_classes_known_only_by_name_count_in_the_selection():
    """K-fold accuracy cannot see a class without examples; the score then mixes in the accuracy on
    whole classes left out (as if known only by name), weighted by the share of such classes."""
    t, syn = task(per_class=8, classes=[0, 1, 2])           # class 3: only a name
    folds = class_folds(t)
    assert all(len(set(t.y[f])) >= 1 for f in folds)
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(t.y)))
    for f in folds:                                          # a class is left out whole or not at all
        assert not set(t.y[f]) & set(t.y[np.setdiff1d(np.arange(len(t.y)), f)])
    sel = cross_validate(t, "auto")
    assert sel.name_only_weight == pytest.approx(1 / 4)
    for c in sel.best.values():
        assert c.accuracy == pytest.approx(0.75 * c.kfold_accuracy + 0.25 * c.name_only_accuracy)
    text = sel.best["text"]                                  # the names do not depend on the examples
    assert text.name_only_accuracy == pytest.approx(text.kfold_accuracy)
    everyone = cross_validate(task()[0], "auto")             # every class has examples: plain K-fold
    assert everyone.name_only_weight == 0.0
    assert all(c.name_only_accuracy is None and c.accuracy == c.kfold_accuracy for c in everyone.best.values())
