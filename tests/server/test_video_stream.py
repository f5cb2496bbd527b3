"""`GET /api/videos/{id}`: range requests (206 and Content-Range, the whole file with Accept-Ranges,
416 past the end), under the image rules (inside the roots, no link out, as indexed, the token), and
search results that carry the moment's time."""

from __future__ import annotations

import os

import pytest

import clipseek
from clipseek.data.synthetic_video import segment_picture
from video_clips import clip

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from clipseek.server import create_app  # noqa: E402

BASE = "http://127.0.0.1"


@pytest.fixture
def served(tmp_path, encoder):
    root = tmp_path / "media"
    root.mkdir()
    video = clip(str(root))
    segment_picture("red star", 64).save(root / "star.png")
    db = str(tmp_path / "g.db")
    with clipseek.Gallery(db, encoder) as g:
        assert g.index(str(root)).added == 2
        ids = {os.path.basename(r.path): r.id for r in g.search("a red star", k=5)}
    return db, root, video, ids


def test_ranges_the_whole_file_and_past_the_end(served, encoder):
    db, root, video, ids = served
    data = open(video, "rb").read()
    vid = ids[os.path.basename(video)]
    with TestClient(create_app(db, encoder), base_url=BASE) as c:
        r = c.get(f"/api/videos/{vid}")
        assert r.status_code == 200 and r.content == data and r.headers["accept-ranges"] == "bytes"
        assert r.headers["content-type"] == "video/mp4" and r.headers["content-length"] == str(len(data))
        r = c.get(f"/api/videos/{vid}", headers={"Range": "bytes=10-99"})
        assert r.status_code == 206 and r.content == data[10:100]
        assert r.headers["content-range"] == f"bytes 10-99/{len(data)}"
        r = c.get(f"/api/videos/{vid}", headers={"Range": "bytes=100-"})
        assert r.status_code == 206 and r.content == data[100:]
        r = c.get(f"/api/videos/{vid}", headers={"Range": "bytes=-50"})
        assert r.status_code == 206 and r.content == data[-50:]
        r = c.get(f"/api/videos/{vid}", headers={"Range": f"bytes=0-{10 * len(data)}"})
        assert r.status_code == 206 and r.content == data
        r = c.get(f"/api/videos/{vid}", headers={"Range": f"bytes={len(data)}-"})
        assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{len(data)}"
        r = c.get(f"/api/videos/{vid}", headers={"Range": "bytes=0-1,5-9"})  # several: the whole file
        assert r.status_code == 200 and r.content == data
        r = c.get(f"/api/videos/{ids['star.png']}")
        assert r.status_code == 404 and "not a video" in r.json()["error"]
        doc = c.get("/api/search", params={"q": "a red star"}).json()
        hit = next(x for x in doc["results"] if x["kind"] == "video")
        assert hit["time_s"] is not None and hit["moments"] and hit["path"] == os.path.basename(video)


def test_refused_outside_the_roots_when_changed_and_without_the_token(served, encoder, tmp_path):
    db, root, video, ids = served
    vid = ids[os.path.basename(video)]
    with TestClient(create_app(db, encoder, token="s3cret"), base_url=BASE) as c:
        assert c.get(f"/api/videos/{vid}").status_code == 401
        assert c.get(f"/api/videos/{vid}?token=s3cret", headers={"Range": "bytes=0-3"}).status_code == 206
        outside = tmp_path / "elsewhere.mp4"
        os.replace(video, outside)
        os.symlink(outside, video)  # the indexed name now leads out of the gallery
        r = c.get(f"/api/videos/{vid}?token=s3cret")
        assert r.status_code == 404 and "outside the gallery" in r.json()["error"]
        os.remove(video)
        with open(video, "wb") as f:
            f.write(b"\0" * 100)  # rewritten after indexing
        r = c.get(f"/api/videos/{vid}?token=s3cret")
        assert r.status_code == 404 and "changed on disk" in r.json()["error"]
