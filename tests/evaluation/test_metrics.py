"""Metrics against scikit-learn on the same predictions, and against hand-made cases."""

import numpy as np
import pytest

from clipseek.evaluation import metrics as ev

sk = pytest.importorskip("sklearn.metrics")


def random_case(seed, n=300, c=7):
    rng = np.random.RandomState(seed)
    y = rng.randint(0, c, n)
    logits = rng.randn(n, c) * 2
    logits[np.arange(n), y] += rng.rand(n) * 3          # better than chance, not perfect
    return y, ev.softmax(logits), logits


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classification_metrics_match_sklearn(seed):
    y, probs, _ = random_case(seed)
    classes = [f"c{i}" for i in range(probs.shape[1])]
    m = ev.classification_metrics(y, probs, classes)
    pred = probs.argmax(1)
    assert m["top1"] == pytest.approx(sk.accuracy_score(y, pred))
    assert m["top5"] == pytest.approx(sk.top_k_accuracy_score(y, probs, k=5, labels=range(7)))
    assert m["mean_per_class_recall"] == pytest.approx(sk.balanced_accuracy_score(y, pred))
    assert m["macro_f1"] == pytest.approx(sk.f1_score(y, pred, average="macro", zero_division=0))
    assert m["confusion_matrix"] == sk.confusion_matrix(y, pred, labels=range(7)).tolist()
    p, r, f, s = sk.precision_recall_fscore_support(y, pred, labels=range(7), zero_division=0)
    for row, pi, ri, fi, si in zip(m["per_class"], p, r, f, s):
        assert (row["precision"], row["recall"], row["f1"], row["support"]) == pytest.approx((pi, ri, fi, si))


@pytest.mark.filterwarnings("ignore:y_pred contains classes")
def test_missing_classes_follow_sklearn_conventions():
    # class 3 never occurs and is never predicted; class 2 is predicted but never true
    y = np.array([0, 0, 1, 1, 1, 0])
    pred = np.array([0, 2, 1, 1, 0, 0])
    probs = np.eye(4)[pred] * 0.7 + 0.075
    m = ev.classification_metrics(y, probs, ["a", "b", "c", "d"])
    assert m["top5"] is None                                  # fewer than 5 classes
    assert m["mean_per_class_recall"] == pytest.approx(sk.balanced_accuracy_score(y, pred))
    assert m["macro_f1"] == pytest.approx(sk.f1_score(y, pred, average="macro", zero_division=0))


def test_hand_made_confusion_and_per_class():
    cm = ev.confusion_matrix([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 2, 2], 3)
    assert cm.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    rows = ev.per_class(cm, ["a", "b", "c"])
    assert rows[0] == {"class": "a", "precision": 1.0, "recall": pytest.approx(2 / 3),
                       "f1": pytest.approx(0.8), "support": 3, "predicted": 2}
    assert rows[1]["precision"] == 0.5 and rows[2]["precision"] == 0.5 and rows[2]["recall"] == 1.0


def test_ece_hand_made():
    # two bins used: conf 0.9 (4 items, 3 right) and conf 0.6 (2 items, both right)
    probs = np.array([[0.9, 0.1]] * 4 + [[0.6, 0.4]] * 2)
    y = np.array([0, 0, 0, 1, 0, 0])
    expected = 4 / 6 * abs(0.75 - 0.9) + 2 / 6 * abs(1.0 - 0.6)
    assert ev.expected_calibration_error(probs, y) == pytest.approx(expected)
    assert ev.expected_calibration_error(np.eye(3), [0, 1, 2]) == pytest.approx(0.0)


def test_temperature_scaling_recovers_known_temperature_and_lowers_ece():
    rng = np.random.RandomState(0)
    n, c = 4000, 5
    true_logits = rng.randn(n, c) * 2
    y = np.array([rng.choice(c, p=p) for p in ev.softmax(true_logits)])   # calibrated at T=1
    overconfident = true_logits * 3                                       # so T should be ~3
    t = ev.fit_temperature(overconfident, y)
    assert t == pytest.approx(3.0, rel=0.1)
    cal = ev.calibration(overconfident, y)
    assert cal["ece_after"] < cal["ece_before"] / 2
    cal2 = ev.calibration(overconfident[:2000], y[:2000], overconfident[2000:], y[2000:])
    assert cal2["fitted_on"] == "calibration split" and cal2["temperature"] == pytest.approx(3.0, rel=0.15)


def test_best_threshold_hand_made():
    scores = np.array([0.10, 0.15, 0.20, 0.30, 0.35, 0.40])
    positive = np.array([1, 1, 0, 1, 0, 0], bool)
    r = ev.best_threshold(scores, positive)
    # best: flag the 4 lowest? P=3/4 R=1 F1=.857; flag 2 lowest: P=1 R=2/3 F1=.8
    assert 0.30 < r["threshold"] < 0.35 and r["recall"] == 1.0 and r["precision"] == 0.75
    assert ev.best_threshold(scores, np.zeros(6, bool))["threshold"] is None


def test_none_of_these_with_other_class():
    # 3 classes, class 2 is "other": its images are dissimilar to classes 0 and 1
    sims = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.85, 0.3, 0.0],
                     [0.3, 0.25, 0.0], [0.2, 0.1, 0.0]])
    y = np.array([0, 1, 0, 2, 2])
    r = ev.none_of_these(sims, y, other=2)
    assert r["detects"] == "other-class images" and 0.3 < r["threshold"] < 0.8
    assert r["precision"] == 1.0 and r["recall"] == 1.0 and r["accuracy_with_abstain"] == 1.0
    r = ev.none_of_these(sims[:, :2], np.array([0, 1, 0, 1, 0]), other=None)
    assert r["detects"] == "mistakes" and r["threshold"] is not None


def test_linear_probe_agrees_with_sklearn_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.RandomState(0)
    centers = rng.randn(4, 16) * 1.5
    y = rng.randint(0, 4, 400)
    x = (centers[y] + rng.randn(400, 16)).astype(np.float32)
    out = ev.linear_probe(x[:300], y[:300], x[300:], 4)
    ours = out["probs"].argmax(1)
    ref = LogisticRegression(C=1.0, max_iter=2000).fit(x[:300], y[:300]).predict(x[300:])
    assert (ours == y[300:]).mean() > 0.8
    assert (ours == ref).mean() > 0.9
    assert out["probs"].shape == (100, 4)


def test_each_linear_probe_fit_is_sklearns_optimum_and_fast():
    import time

    from sklearn.linear_model import LogisticRegression

    from clipseek.evaluation.metrics import _fit_logreg

    rng = np.random.RandomState(3)
    y = rng.randint(0, 10, 88)
    x = rng.randn(10, 512)[y] + 3 * rng.randn(88, 512)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    for l2 in (1e-3, 1e-1):  # ours: mean CE + l2 |W|^2; sklearn: C * sum CE + |W|^2 / 2
        predict, _ = _fit_logreg(x, y, 10, l2)
        ref = LogisticRegression(C=1 / (2 * l2 * len(y)), tol=1e-10, max_iter=10_000).fit(x, y)
        assert np.abs(predict(x[:30]) - ref.predict_proba(x[:30])).max() < 2e-3
    t = time.perf_counter()
    ev.linear_probe(x.astype(np.float32), y, x[:20].astype(np.float32), 10)  # the 88-image eval re-run
    assert time.perf_counter() - t < 4.0  # was 8 s (torch L-BFGS, 200 steps a fit)


def test_retrieval_recall_matches_brute_force():
    rng = np.random.RandomState(1)
    imgs = rng.randn(30, 8)
    imgs /= np.linalg.norm(imgs, axis=1, keepdims=True)
    owner = np.repeat(np.arange(30), 2)                    # two captions per image
    texts = imgs[owner] + rng.randn(60, 8) * 0.6
    texts /= np.linalg.norm(texts, axis=1, keepdims=True)
    r = ev.retrieval_recall(imgs, texts, owner)
    sims = texts @ imgs.T
    for k in (1, 5, 10):
        t2i = np.mean([owner[j] in np.argsort(-sims[j])[:k] for j in range(60)])
        i2t = np.mean([bool(set(np.argsort(-sims[:, i])[:k]) & set(np.where(owner == i)[0])) for i in range(30)])
        assert r[f"text_to_image_recall@{k}"] == pytest.approx(t2i)
        assert r[f"image_to_text_recall@{k}"] == pytest.approx(i2t)
    assert r["n_images"] == 30 and r["n_captions"] == 60



def test_retrieval_recall_identical_captions_of_two_images_are_one_tie():
    """Images 0 and 1 both have the caption "a dog". Image 1's copy is encoded a hair closer to image 0
    (as float rounding in a batch can do), so by raw score it outranks image 0's own "a dog". With the
    caption texts given, identical texts are one tie, resolved for image 0, whatever the caption order."""
    rng = np.random.RandomState(0)
    imgs = rng.randn(3, 8)
    imgs /= np.linalg.norm(imgs, axis=1, keepdims=True)
    dog = imgs[0] + 0.05 * rng.randn(8)
    dog /= np.linalg.norm(dog)
    closer = dog + 1e-3 * imgs[0]
    closer /= np.linalg.norm(closer)
    texts = ["a dog", "a dog", "a cat", "a bird"]
    owner = [0, 1, 1, 2]
    vecs = np.stack([dog, closer, imgs[1], imgs[2]]).astype(np.float32)  # images 1 and 2: exact hits
    assert vecs[1] @ imgs[0] > vecs[0] @ imgs[0] > max(imgs[1] @ imgs[0], imgs[2] @ imgs[0])

    by_score = ev.retrieval_recall(imgs, vecs, owner)
    assert by_score["image_to_text_recall@1"] == pytest.approx(2 / 3)  # image 0 misses by a rounding
    assert by_score["image_to_text_recall@5"] == 1.0
    for order in ([0, 1, 2, 3], [1, 0, 2, 3], [3, 1, 2, 0]):
        r = ev.retrieval_recall(imgs, vecs[order], [owner[i] for i in order], texts=[texts[i] for i in order])
        assert r["image_to_text_recall@1"] == 1.0, order
        assert r["n_images"] == 3 and r["n_captions"] == 4
    # without duplicates, giving the texts changes nothing
    plain = ["a dog", "a puppy", "a cat", "a bird"]
    assert ev.retrieval_recall(imgs, vecs, owner, texts=plain) == by_score
