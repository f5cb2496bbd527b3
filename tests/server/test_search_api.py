"""/api/search and /api/search/image with filters, add/subtract terms and relevant=true: the same
results as the library, 4xx {"error": ...} for bad values, and the limits on the new parameters."""

from __future__ import annotations

import io
import os

import pytest

import clipseek
from clipseek.gallery.query import Filter, Term
from helpers import app_client, index_folder, make_image

fastapi = pytest.importorskip("fastapi")



@pytest.fixture(scope="module")
def gallery(tmp_path_factory, encoder):
    root = tmp_path_factory.mktemp("api") / "photos"
    (root / "trip").mkdir(parents=True)
    for i in range(14):
        size = [(64, 40), (40, 64), (48, 48)][i % 3]
        make_image(i, size).save(root / ("trip" if i % 2 else ".") / f"p{i:02d}{'.png' if i % 4 else '.jpg'}")
    db = index_folder(root, encoder)
    return db, str(root)


@pytest.fixture(scope="module")
def client(gallery, encoder):
    with app_client(gallery[0], encoder) as c:
        yield c


def error(r, status) -> str:
    assert r.status_code == status, r.text
    return r.json()["error"]


def test_filters_and_terms_equal_the_library(client, gallery, encoder):
    db, root = gallery
    first = client.get("/api/search", params={"q": "a red car", "k": 1}).json()["results"][0]
    params = {"q": "a red car", "k": 14, "in": "trip", "orientation": "landscape", "ext": "png",
              "add": ["0.5:blue sky", "at night"], "subtract": [f"image:{first['id']}"]}
    body = client.get("/api/search", params=params).json()
    with clipseek.Gallery(db, encoder) as g:
        want = g.search("a red car", k=14, add=["0.5:blue sky", "at night"],
                        subtract=[Term(-1.0, image_id=first["id"])],
                        where=Filter.parse([os.path.join(root, "trip")], orientation="landscape", ext="png"))
    assert want and [r["id"] for r in body["results"]] == [r.id for r in want]
    assert all(r["path"].startswith("trip/") and r["width"] > r["height"] for r in body["results"])
    assert body["add"] == ["+0.5:blue sky", "+1:at night"] and body["subtract"] == [f"-1:image:{first['id']}"]
    assert "landscape" in body["filter"] and body["relevant"] is False

    only = client.get("/api/search", params={"q": "a red car", "k": 14, "relevant": "true"}).json()
    every = client.get("/api/search", params={"q": "a red car", "k": 14}).json()
    assert only["results"] and [r["id"] for r in only["results"]] == [r["id"] for r in every["results"]
                                                                         if r["relevant"]]
    # add alone is a query; more like this = add image:ID
    alone = client.get("/api/search", params={"add": f"image:{first['id']}", "k": 3}).json()
    assert alone["results"][0]["id"] == first["id"] and alone["results"][0]["score"] == pytest.approx(1, abs=1e-4)


def test_image_upload_with_a_filter(client):
    buf = io.BytesIO()
    make_image(3, (40, 64)).save(buf, "PNG")
    r = client.post("/api/search/image", files={"file": ("x.png", buf.getvalue(), "image/png")},
                    data={"k": "5", "orientation": "portrait", "in": "trip"})
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert res and all(x["height"] > x["width"] and x["path"].startswith("trip/") for x in res)


def test_a_filter_no_image_passes(client):
    body = client.get("/api/search", params={"q": "cat", "in": "nowhere"}).json()
    assert body["results"] == [] and body["message"].startswith("no image passes the filter (under ")


@pytest.mark.parametrize("params, status, message", [
    ({"q": "cat", "orientation": "diagonal"}, 400, "unknown orientation"),
    ({"q": "cat", "after": "soon"}, 400, "cannot read after date 'soon'"),
    ({"q": "cat", "min-size": "huge"}, 400, "cannot read min-size"),
    ({"q": "cat", "ext": "exe"}, 400, "unknown image extension 'exe'"),
    ({"q": "cat", "add": "1..2:dog"}, 400, "is not a number"),
    ({"q": "cat", "add": "image:99999"}, 400, "no image with id 99999"),
    ({"q": "cat", "add": [f"t{i}" for i in range(9)], "subtract": [f"s{i}" for i in range(8)]}, 400,
     "too many add/subtract terms: 17 (the limit is 16)"),
    ({"q": "cat", "in": [f"d{i}" for i in range(17)]}, 400, "too many folders"),
    ({"q": "cat", "add": "x" * 501}, 400, "parameter too long"),
    ({"subtract": "cat"}, 400, "empty query"),
    ({"q": "cat", "relevant": "perhaps"}, 422, "relevant"),
])
def test_bad_values_are_4xx_json_errors(client, params, status, message):
    assert message in error(client.get("/api/search", params=params), status)


def test_sixteen_terms_are_within_the_limit(client):
    r = client.get("/api/search", params={"q": "cat", "add": [f"t{i}" for i in range(8)],
                                          "subtract": [f"s{i}" for i in range(8)]})
    assert r.status_code == 200 and r.json()["results"]


def test_terms_never_name_files_on_the_server(client, gallery):
    db, root = gallery
    path = os.path.join(root, "p00.jpg")  # an existing image: taken as text, not read
    body = client.get("/api/search", params={"q": "cat", "add": path}).json()
    assert body["add"] == [f"+1:{path}"]
