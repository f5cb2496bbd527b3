"""The API with a SigLIP model: classify answers the model's own sigmoid probabilities and says so."""

from __future__ import annotations

import io

import pytest
from PIL import Image

import clipseek
from helpers import indexed_gallery, make_image

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from clipseek.server import create_app


@pytest.fixture(scope="module")
def client(tmp_path_factory, siglip_encoder):
    db = indexed_gallery(tmp_path_factory.mktemp("siglip-server") / "photos", siglip_encoder, 4,
                         lambda i: (40 + 6 * i, 36))
    with TestClient(create_app(db, siglip_encoder), base_url="http://127.0.0.1") as c:
        yield c


def test_classify_gives_sigmoid_probabilities(client, siglip_encoder):
    buf = io.BytesIO()
    make_image(7, (40, 32)).save(buf, "PNG")
    labels = ["cat", "dog", "car"]
    r = client.post("/api/classify", files={"file": ("x.png", buf.getvalue(), "image/png")},
                    data={"labels": ",".join(labels)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["scoring"] == "sigmoid"
    img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    probs = clipseek.classify(siglip_encoder, img, labels).probs[0]
    got = {p["label"]: p["score"] for p in body["predictions"]}
    assert got == pytest.approx(dict(zip(labels, probs)), abs=1e-5)
    assert abs(sum(got.values()) - 1.0) > 1e-3  # not shared out among the labels


def test_search_works_with_a_siglip_gallery(client):
    r = client.get("/api/search", params={"q": "a photo of a cat", "k": 3})
    assert r.status_code == 200, r.text
    assert len(r.json()["results"]) == 3
