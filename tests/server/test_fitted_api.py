"""`serve --examples/--classifier`: POST /api/classify/examples, in-process (FastAPI TestClient)."""

import io

import numpy as np
import pytest
from PIL import Image

from clipseek.errors import ModelMismatchError
from clipseek.fewshot.fit import fit_examples
from helpers import FakeEncoder, indexed_gallery

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from clipseek.server import create_app  # noqa: E402

COLOURS = {"red": (220, 30, 30), "blue": (30, 40, 220)}


def colour_png(colour, seed) -> bytes:
    rng = np.random.RandomState(seed)
    a = np.clip(np.array(COLOURS[colour])[None, None] + rng.randn(32, 32, 3) * 25, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def setup(tmp_path_factory, encoder):
    root = tmp_path_factory.mktemp("fitted")
    for c in COLOURS:
        (root / "ex" / c).mkdir(parents=True)
        for i in range(12):
            (root / "ex" / c / f"{i}.png").write_bytes(colour_png(c, 100 * len(c) + i))
    db = indexed_gallery(root / "photos", encoder, 3)
    clf, _ = fit_examples(encoder, str(root / "ex"), coverage=0.8, false_alarm=0.1)
    return db, clf, str(root / "ex")


def test_classify_by_examples(setup, encoder):
    db, clf, _ = setup
    with TestClient(create_app(db, encoder, classifier=clf), base_url="http://127.0.0.1") as c:
        r = c.post("/api/classify/examples", files={"file": ("x.png", colour_png("red", 7), "image/png")})
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["classes"] == ["blue", "red"] and doc["scoring"] == "softmax"
        assert doc["predictions"][0]["label"] == "red" and doc["set"][0] == "red" and doc["coverage"] == 0.8
        assert doc["unusual"] in (True, False) and doc["false_alarm"] == 0.1
        vec = encoder.encode_images([Image.open(io.BytesIO(colour_png("red", 7))).convert("RGB")])
        want = clf.predict(vec).probs[0]
        got = {p["label"]: p["score"] for p in doc["predictions"]}
        assert got["red"] == pytest.approx(want[1], abs=1e-6)
        bad = c.post("/api/classify/examples", files={"file": ("x.png", b"not an image")})
        assert bad.status_code == 400 and "not a usable image" in bad.json()["error"]
        assert "/api/classify/examples" in c.get("/openapi.json").json()["paths"]


def test_examples_are_fitted_with_the_servers_model(setup, encoder):
    db, _, ex = setup
    make = lambda enc: fit_examples(enc, ex)[0]  # noqa: E731  what serve --examples hands over
    with TestClient(create_app(db, encoder, classifier=make), base_url="http://127.0.0.1") as c:
        r = c.post("/api/classify/examples", files={"file": ("x.png", colour_png("blue", 3))})
        assert r.status_code == 200 and r.json()["predictions"][0]["label"] == "blue"
        assert r.json()["set"] is None


def test_without_a_classifier_there_is_no_such_route(setup, encoder):
    with TestClient(create_app(setup[0], encoder), base_url="http://127.0.0.1") as c:
        r = c.post("/api/classify/examples", files={"file": ("x.png", colour_png("red", 1))})
        assert r.status_code == 404 and "no such API endpoint" in r.json()["error"]


def test_a_classifier_of_another_model_stops_the_server_at_start(setup, encoder, tmp_path):
    clf, _ = fit_examples(FakeEncoder(), setup[2])
    with pytest.raises(ModelMismatchError, match="the classifier was fitted with model fake-clip"):
        create_app(setup[0], encoder, classifier=clf)
