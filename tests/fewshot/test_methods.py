"""fewshot.methods: each method's logits against a direct numpy computation (selection: test_selection.py)."""

import numpy as np
import pytest

from clipseek.fewshot.methods import fit_head
from gaussians import S, task


def test_text_and_prototype_logits():
    t, syn = task()
    q, _ = syn.sample(20)
    np.testing.assert_allclose(fit_head(t, "text", {}).logits(q), S * q.astype(float) @ syn.text.T, rtol=1e-5)
    protos = np.stack([t.x[t.y == c].astype(float).mean(axis=0) for c in range(4)])
    protos /= np.linalg.norm(protos, axis=1, keepdims=True)
    np.testing.assert_allclose(fit_head(t, "prototype", {}).logits(q), S * q @ protos.T, rtol=1e-5)


def tip_direct(q, text, has_text, keys, labels, alpha, beta):
    """Tip-Adapter written out per image and class. A class without a part gets it from the other by
    least-squares lines (np.polyfit) fitted on the examples' leave-one-out evidence, over the classes
    that have both parts."""
    n_classes = len(has_text)
    present = np.array([(labels == c).any() for c in range(n_classes)])

    def evidence(v, skip=None):
        return np.array([sum(np.exp(-beta * (1 - v @ keys[j])) for j in range(len(keys))
                             if labels[j] == c and j != skip) for c in range(n_classes)])

    both = has_text & present
    pairs = [(keys[i] @ text[c], evidence(keys[i], skip=i)[c]) for i in range(len(keys)) for c in np.flatnonzero(both)]
    t, e = np.array(pairs).T
    b, a = np.polyfit(t, e, 1) if not (has_text.all() and present.all()) else (0, 0)
    d, c0 = np.polyfit(e, t, 1) if not (has_text.all() and present.all()) else (0, 0)
    out = np.zeros((len(q), n_classes))
    for i, v in enumerate(q.astype(float)):
        cos = np.array([v @ text[c] for c in range(n_classes)])
        ev = evidence(v)
        ev[~present] = a + b * cos[~present]
        cos[~has_text] = c0 + d * ev[~has_text]
        out[i] = S * cos + alpha * S / 100 * ev
    return out


@pytest.mark.parametrize("has", [[1, 1, 1, 1], [1, 0, 1, 1], [0, 1, 1, 1]])
def test_tip_logits(has):
    has = np.array(has, bool)
    t, syn = task(texts_present=has, classes=[0, 1, 2])     # class 3: only a name, no example
    if has.all():
        t, syn = task(texts_present=has)                    # every class has both: Tip-Adapter as written
    q, _ = syn.sample(7)
    head = fit_head(t, "tip", {"alpha": 3.0, "beta": 5.5})
    want = tip_direct(q, np.where(has[:, None], syn.text, 0), has, t.x.astype(float), t.y, 3.0, 5.5)
    np.testing.assert_allclose(head.logits(q), want, rtol=1e-5, atol=1e-9)


def test_logistic_starts_at_the_text_classifier_and_a_strong_penalty_keeps_it():
    t, syn = task()
    q, _ = syn.sample(10)
    head = fit_head(t, "logistic", {"l2": 1e6})
    np.testing.assert_allclose(head.logits(q), S * q @ syn.text.T, atol=1e-2)
    weak = fit_head(t, "logistic", {"l2": 1e-3})
    assert np.abs(weak.logits(q) - S * q @ syn.text.T).max() > 1.0


def test_a_class_with_only_a_name_keeps_its_text_in_the_logistic_head():
    t, syn = task(per_class=10, classes=[0, 1, 2])
    q, qy = syn.sample(per_class=30, classes=[3])
    head = fit_head(t, "logistic", {"l2": 1.0})
    assert (head.logits(q).argmax(axis=1) == 3).mean() > 0.8


def test_a_class_with_only_a_name_competes_in_tip():
    """Its missing cache evidence is predicted from its text cosine (the line fitted on the other
    classes), not set to "no evidence": its images are still recognised at a cache-heavy setting."""
    t, syn = task(per_class=10, classes=[0, 1, 2], text_noise=0.3)
    q, _ = syn.sample(per_class=40, classes=[3])
    head = fit_head(t, "tip", {"alpha": 30.0, "beta": 4.0})
    assert head.settings["bridge"] is not None
    assert (head.logits(q).argmax(axis=1) == 3).mean() > 0.8
