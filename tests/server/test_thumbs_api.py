"""GET /api/thumbs/{id}?size=grid|view&h=HASH: the thumbnails `index` made, with validators."""

import io
import os

import pytest
from fastapi.testclient import TestClient
from PIL import Image

import clipseek
from clipseek.data.synthetic import photo_like
from clipseek.gallery.thumbs import thumbnail_path
from clipseek.server.app import create_app

BASE = "http://127.0.0.1"


@pytest.fixture(scope="module")
def served(tmp_path_factory, encoder):
    root = tmp_path_factory.mktemp("thumbs") / "photos"
    root.mkdir()
    photo_like(1, (2000, 1500)).save(root / "big.jpg", quality=90)
    photo_like(2, (300, 200)).save(root / "small.png")
    db = str(root.parent / "g.db")
    with clipseek.Gallery(db, encoder) as g:
        g.index([str(root)])
    with TestClient(create_app(db, encoder), base_url=BASE) as c:
        res = c.get("/api/search", params={"q": "photo", "k": 10}).json()["results"]
        yield c, db, {r["path"]: r for r in res}


def test_both_sizes_are_the_ones_index_made(served):
    c, db, res = served
    big = res["big.jpg"]
    for size, px in (("grid", 256), ("view", 1280)):
        made = open(thumbnail_path(db + ".thumbs", big["hash"], px), "rb").read()  # before any request
        r = c.get(f"/api/thumbs/{big['id']}", params={"size": size})
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg" and r.content == made
        assert max(Image.open(io.BytesIO(r.content)).size) == px
    assert c.get(f"/api/thumbs/{big['id']}").content == c.get(f"/api/thumbs/{big['id']}?size=grid").content
    small = c.get(f"/api/thumbs/{res['small.png']['id']}?size=view")
    assert Image.open(io.BytesIO(small.content)).size == (300, 200)  # never enlarged
    assert c.get(f"/api/thumbs/{big['id']}?size=huge").status_code == 422


def test_cache_headers_and_validators(served):
    c, _, res = served
    big = res["big.jpg"]
    r = c.get(f"/api/thumbs/{big['id']}?size=view&h={big['hash']}")
    assert r.headers["cache-control"] == "private, max-age=31536000, immutable"
    assert r.headers["etag"] == f'"{big["hash"]}-view"'
    r = c.get(f"/api/thumbs/{big['id']}?size=view")  # the URL does not name the content: revalidate
    assert r.headers["cache-control"] == "private, no-cache"
    r = c.get(f"/api/thumbs/{big['id']}?h=0123abcd")  # another content than the id has now
    assert r.status_code == 200 and r.headers["cache-control"] == "private, no-cache"
    r = c.get(f"/api/thumbs/{big['id']}?size=view", headers={"If-None-Match": f'"{big["hash"]}-view"'})
    assert r.status_code == 304 and r.content == b""
    r = c.get(f"/api/thumbs/{big['id']}?size=grid", headers={"If-None-Match": f'"{big["hash"]}-view"'})
    assert r.status_code == 200 and r.content


def test_view_size_made_lazily_for_an_older_gallery(served):
    c, db, res = served
    big = res["big.jpg"]
    os.remove(thumbnail_path(db + ".thumbs", big["hash"], 1280))
    r = c.get(f"/api/thumbs/{big['id']}?size=view")
    assert r.status_code == 200 and max(Image.open(io.BytesIO(r.content)).size) == 1280  # not the draft size
    assert os.path.exists(thumbnail_path(db + ".thumbs", big["hash"], 1280))
