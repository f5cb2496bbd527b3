"""zero_shot.classify_fitted and sort_plan with a classifier taught by example pictures: sets,
unusual images, and where --sort-into puts them."""

import numpy as np
import pytest
from PIL import Image

from clipseek.errors import ModelMismatchError
from clipseek.fewshot.fit import fit_examples
from clipseek.zero_shot import UNUSUAL, classify_fitted, sort_plan
from helpers import FakeEncoder

COLOURS = {"red": (220, 30, 30), "blue": (30, 40, 220), "green": (30, 200, 40)}


def colour_images(d, colour, n, seed=0, noise=25):
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(seed)
    for i in range(n):
        a = np.clip(np.array(COLOURS[colour])[None, None] + rng.randn(32, 32, 3) * noise, 0, 255)
        Image.fromarray(a.astype(np.uint8)).save(d / f"{colour}{seed}_{i}.png")
    return d


@pytest.fixture
def examples(tmp_path):
    for k, c in enumerate(COLOURS):
        colour_images(tmp_path / "ex" / c, c, 12, seed=k)
    return str(tmp_path / "ex")


def test_sets_and_unusual_images(tmp_path, fake_encoder, examples):
    clf, skipped = fit_examples(fake_encoder, examples, coverage=0.8, false_alarm=0.1)
    assert not skipped
    q = colour_images(tmp_path / "q", "red", 4, seed=9)
    odd = tmp_path / "q" / "grey.png"
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(odd)
    res = classify_fitted(fake_encoder, sorted(str(p) for p in q.iterdir()), clf, top=2)
    by = {p.path: p for p in res.predictions}
    assert by[str(odd)].unusual and by[str(odd)].anomaly > clf.anomaly.threshold
    reds = [p for p in res.predictions if "red" in p.path]
    assert all(p.label == "red" and p.set == ["red"] and not p.unusual for p in reds)
    d = res.to_dict()
    assert d["scoring"] == "softmax" and d["classifier"]["conformal"]["coverage"] == 0.8
    assert set(d["results"][0]) == {"path", "label", "predictions", "set", "anomaly", "unusual"}


def test_sort_plan_sends_sets_of_several_labels_to_unsure_and_the_unusual_to_unusual(tmp_path, fake_encoder,
                                                                                       examples):
    clf, _ = fit_examples(fake_encoder, examples, coverage=0.8, false_alarm=0.1)
    res = classify_fitted(fake_encoder, [str(p) for p in colour_images(tmp_path / "q", "blue", 3).iterdir()], clf)
    res.predictions[0].set = ["blue", "green"]       # as a hard image's set would be
    res.predictions[1].unusual = True
    plan = {t.source: t.destination for t in sort_plan(res, str(tmp_path / "out"))}
    dest = [plan[p.path].split("/")[-2] for p in res.predictions]
    assert dest == ["_unsure", UNUSUAL, "blue"]


def test_a_classifier_of_another_model_is_refused(tmp_path, fake_encoder, examples):
    clf, _ = fit_examples(fake_encoder, examples)
    with pytest.raises(ModelMismatchError, match="the classifier was fitted with model fake-clip"):
        classify_fitted(FakeEncoder(name="other-clip"), [examples + "/red/red0_0.png"], clf)
