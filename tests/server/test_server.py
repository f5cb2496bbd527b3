"""clipseek serve: the HTTP API in-process (FastAPI TestClient): endpoints, limits, traversal, token."""

from __future__ import annotations

import io
import os
import shutil
import threading

import numpy as np
import pytest
from PIL import Image

import clipseek
from clipseek.core.prompts import DEFAULT_TEMPLATE, parse_labels
from clipseek.server.checks import Limits
from helpers import app_client, indexed_gallery, make_image

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from clipseek.server import create_app, exposure_warning  # noqa: E402

BASE = "http://127.0.0.1"


@pytest.fixture(scope="module")
def gallery(tmp_path_factory, encoder):
    """A gallery of 12 images (one TIFF, one in a subfolder) and its DB; returns (db, root)."""
    root = tmp_path_factory.mktemp("server") / "photos"
    (root / "sub").mkdir(parents=True)
    for i in range(10):
        make_image(i, (40 + 6 * i, 36)).save(root / f"p{i}.png")
    make_image(20, (64, 48)).save(root / "sub" / "deep.jpg", quality=90)
    make_image(21, (50, 30)).save(root / "scan.tif")
    db = str(root.parent / "g.db")
    with clipseek.Gallery(db, encoder) as g:
        assert g.index([str(root)]).added == 12
    return db, str(root)


@pytest.fixture(scope="module")
def client(gallery, encoder):
    with app_client(gallery[0], encoder, base_url=BASE) as c:
        yield c


def png_bytes(seed=0, size=(40, 32)) -> bytes:
    buf = io.BytesIO()
    make_image(seed, size).save(buf, "PNG")
    return buf.getvalue()


def ids_by_path(client) -> dict[str, int]:
    res = client.get("/api/search", params={"q": "photo", "k": 100}).json()["results"]
    return {r["path"]: r["id"] for r in res}


def assert_json_error(r, status):
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert isinstance(r.json()["error"], str) and r.json()["error"]


# ---- endpoints -------------------------------------------------------------------------------------
def test_health_stats_and_docs(client, gallery, encoder):
    assert client.get("/api/health").json()["status"] == "ok"
    s = client.get("/api/stats").json()
    assert s["images"] == 12 and s["skipped"] == 0 and s["db"] == "../g.db" and "root" not in s
    assert not any(str(v).startswith(os.sep) for v in s.values())  # no absolute path of the server
    assert s["fingerprint"].split("@")[1] == str(encoder.fingerprint).split("@")[1]
    assert s["limits"]["max_labels"] == 1000 and s["limits"]["max_pixels"] == 64_000_000
    assert s["default_template"] == DEFAULT_TEMPLATE  # the page names the default prompt from here
    spec = client.get("/openapi.json").json()
    for path in ("/api/search", "/api/search/image", "/api/classify", "/api/images/{image_id}",
                 "/api/thumbs/{image_id}", "/api/stats", "/api/health"):
        assert path in spec["paths"]
    assert_json_error(client.get("/docs"), 404)  # no interactive page (it loaded a CDN): the schema is enough


def test_text_search_matches_the_library(client, gallery, encoder):
    db, root = gallery
    r = client.get("/api/search", params={"q": "a red car", "k": 5})
    assert r.status_code == 200
    body = r.json()
    assert body["query"] == "a red car" and len(body["results"]) == 5
    with clipseek.Gallery(db, encoder) as g:
        expected = g.search("a red car", k=5)
    got = body["results"]
    assert [x["id"] for x in got] == [e.id for e in expected]
    assert np.allclose([x["score"] for x in got], [e.score for e in expected], atol=1e-5)
    for x, e in zip(got, expected):
        assert set(x) == {"id", "path", "score", "width", "height", "relevance", "relevant", "hash", "kind",
                          "time_s", "moments"}
        assert x["path"] == os.path.relpath(e.path, root) and not os.path.isabs(x["path"])
        assert (x["width"], x["height"]) == (e.width, e.height)
    paths = ids_by_path(client)
    assert "sub/deep.jpg" in paths and "scan.tif" in paths and len(paths) == 12


def test_image_search_finds_the_same_image(client, gallery):
    data = (os.path.join(gallery[1], "p3.png"))
    with open(data, "rb") as f:
        r = client.post("/api/search/image", files={"file": ("p3.png", f, "image/png")}, data={"k": "3"})
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert len(res) == 3 and res[0]["path"] == "p3.png" and res[0]["score"] == pytest.approx(1, abs=1e-4)


def test_classify_matches_the_library_classify(client, encoder):
    data = png_bytes(5)
    r = client.post("/api/classify", files={"file": ("x.png", data, "image/png")},
                    data={"labels": "cat, dog,car"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["labels"] == ["cat", "dog", "car"] and body["templates"] == 1
    probs = clipseek.classify(encoder, Image.open(io.BytesIO(data)).convert("RGB"), ["cat", "dog", "car"]).probs[0]
    got = {p["label"]: p["score"] for p in body["predictions"]}
    assert got == pytest.approx(dict(zip(["cat", "dog", "car"], probs)), abs=1e-5)
    assert [p["score"] for p in body["predictions"]] == sorted(got.values(), reverse=True)
    # new lines separate labels as commas do, exactly as the CLI's --labels splits them
    typed = "cat\ndog, car\r\n"
    r = client.post("/api/classify", files={"file": ("x.png", data)}, data={"labels": typed})
    assert r.status_code == 200 and r.json()["labels"] == parse_labels(typed) == ["cat", "dog", "car"]
    # repeated fields, the built-in template set, and custom templates
    r = client.post("/api/classify", files={"file": ("x.png", data)},
                    data={"labels": ["red circle", "blue square"], "templates": "imagenet"})
    assert r.status_code == 200 and r.json()["templates"] == 80
    r = client.post("/api/classify", files={"file": ("x.png", data)},
                    data={"labels": ["cat", "dog"], "templates": ["a photo of a {}.", "a {} picture"]})
    assert r.status_code == 200 and r.json()["templates"] == 2
    assert sum(p["score"] for p in r.json()["predictions"]) == pytest.approx(1, abs=1e-5)


def test_images_and_cached_thumbnails(client, gallery):
    db, root = gallery
    ids = ids_by_path(client)
    r = client.get(f"/api/images/{ids['sub/deep.jpg']}")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert r.content == open(os.path.join(root, "sub", "deep.jpg"), "rb").read()
    r = client.get(f"/api/images/{ids['p2.png']}")
    assert r.headers["content-type"] == "image/png" and r.headers["x-content-type-options"] == "nosniff"
    r = client.get(f"/api/images/{ids['scan.tif']}")  # not shown by browsers: sent as a JPEG copy
    assert r.headers["content-type"] == "image/jpeg" and Image.open(io.BytesIO(r.content)).size == (50, 30)

    shutil.rmtree(db + ".thumbs")  # as a gallery made by an older release: made when first asked
    r = client.get(f"/api/thumbs/{ids['p9.png']}")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(r.content)).size) <= 256
    cached = [os.path.join(d, f) for d, _, fs in os.walk(db + ".thumbs") for f in fs]
    assert len(cached) == 1 and cached[0].endswith("-256.jpg")
    before = os.stat(cached[0]).st_mtime_ns
    assert client.get(f"/api/thumbs/{ids['p9.png']}").content == r.content
    assert os.stat(cached[0]).st_mtime_ns == before  # made once, then served from the cache


def test_page_and_static_files(client):
    r = client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert 'id="q"' in r.text and "/static/app.js" in r.text
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200


def test_concurrent_requests_from_many_threads(client):
    expected = client.get("/api/search", params={"q": "blue square", "k": 4}).json()
    out, errors = [], []

    def worker():
        try:
            for _ in range(5):
                out.append(client.get("/api/search", params={"q": "blue square", "k": 4}).json())
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(out) == 40
    for o in out:  # queries that arrive together are encoded in one batch: same ids, same scores
        assert [r["id"] for r in o["results"]] == [r["id"] for r in expected["results"]]
        assert [r["score"] for r in o["results"]] == pytest.approx([r["score"] for r in expected["results"]],
                                                                   abs=1e-5)


def test_text_queries_batched_under_load_equal_single_queries(gallery, encoder):
    from clipseek.server.service import GalleryService

    svc = GalleryService(gallery[0], encoder)
    queries = ["cat", "a big red house", "dog", "blue boat on a green lake", "tree"] * 4
    single = [svc.search_text(q, 5) for q in queries]
    calls = []
    real = encoder.encode_texts
    gate = threading.Event()

    def slow_first(texts, **kw):  # hold the model busy so the other queries queue up
        calls.append(len(texts))
        gate.wait(5)
        return real(texts, **kw)

    svc.gallery._encoder = type("E", (), {"encode_texts": staticmethod(slow_first),
                                          "fingerprint": encoder.fingerprint})()
    out = [None] * len(queries)
    threads = [threading.Thread(target=lambda i=i: out.__setitem__(i, svc.search_text(queries[i], 5)))
               for i in range(len(queries))]
    threads[0].start()
    while not calls:
        threading.Event().wait(0.01)
    gone = svc.submit_search_text("a client that went away", 3)
    assert gone.cancel()  # e.g. the HTTP client disconnected while its query waited
    for t in threads[1:]:
        t.start()
    while len(svc._model.pending) < len(queries):
        threading.Event().wait(0.01)
    gate.set()
    for t in threads:
        t.join()
    svc.close()
    # one forward for everything that queued (each distinct text once), none for `gone`
    assert calls == [1, len(set(queries[1:]))]
    for a, b in zip(out, single):
        assert [r["id"] for r in a["results"]] == [r["id"] for r in b["results"]]
        assert [r["score"] for r in a["results"]] == pytest.approx([r["score"] for r in b["results"]], abs=1e-5)


# ---- limits ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("params,status", [  # 422: out of the range the schema states; 400: the service
    ({"q": "cat", "k": 0}, 422), ({"q": "cat", "k": 201}, 422), ({"q": "cat", "k": -5}, 422),
    ({"q": "cat", "k": "ten"}, 422), ({"k": 3}, 400), ({"q": ""}, 400), ({"q": "   "}, 400),
    ({"q": "x" * 501}, 422), ({"q": "\x1f"}, 400),
])
def test_search_limits(client, params, status):
    assert_json_error(client.get("/api/search", params=params), status)


def test_other_methods_on_known_paths_are_405_with_allow(client):
    for method, path, allow in (("PUT", "/api/search", "GET"), ("DELETE", "/api/classify", "POST"),
                                ("PATCH", "/api/images/1", "GET"), ("POST", "/api/stats", "GET")):
        r = client.request(method, path)
        assert_json_error(r, 405)
        assert r.headers["allow"] == allow
    assert_json_error(client.put("/api/nothing-here"), 404)
    assert_json_error(client.get("/api/nothing-here"), 404)


def test_templates_with_other_fields_are_a_json_400_not_a_500(client):
    for bad in ("a {x} {}", "{0} {}", "{}{"):
        r = classify_error(client, "cat,dog", bad)
        assert_json_error(r, 400)
        assert repr(bad) in r.json()["error"]


def classify_error(client, labels, templates=None, data=None):
    form = {"labels": labels} if templates is None else {"labels": labels, "templates": templates}
    return client.post("/api/classify", files={"file": ("x.png", data or png_bytes())}, data=form)


def test_label_and_template_limits(client):
    ok = ",".join(f"label{i}" for i in range(1000))
    assert classify_error(client, ok).status_code == 200  # exactly the limit
    assert_json_error(classify_error(client, ok + ",one more"), 400)
    assert "too many labels" in classify_error(client, ok + ",one more").json()["error"]
    assert_json_error(classify_error(client, "cat," + "x" * 201), 400)
    assert_json_error(classify_error(client, "cat,dog,cat"), 400)  # duplicates
    assert_json_error(classify_error(client, " , ,"), 400)  # no labels
    assert_json_error(classify_error(client, "cat,dog", "no placeholder"), 400)
    r = classify_error(client, "cat,dog", "/etc/passwd")  # a template is never a file on the server
    assert_json_error(r, 400) and "root:" not in r.text
    assert_json_error(classify_error(client, ok[:4000], "imagenet"), 400)  # too many prompts
    assert_json_error(classify_error(client, "cat", ["a {}"] * 101), 400)
    assert_json_error(client.post("/api/classify", files={"file": ("x.png", png_bytes())}), 422)
    assert_json_error(client.post("/api/classify", data={"labels": "cat,dog"}), 422)  # no file


def test_bad_uploads(client):
    assert_json_error(classify_error(client, "cat,dog", data=b"not an image at all"), 400)
    r = client.post("/api/search/image", files={"file": ("e.png", b"")})
    assert_json_error(r, 400)
    truncated = png_bytes()[:60]
    assert_json_error(client.post("/api/search/image", files={"file": ("t.png", truncated)}), 400)
    assert_json_error(client.post("/api/search/image", files={"file": ("x.png", png_bytes())},
                                  data={"k": "0"}), 422)


def test_upload_size_and_pixel_limits(gallery, encoder):
    limits = Limits(max_upload_bytes=20_000, max_pixels=50 * 50)
    with TestClient(create_app(gallery[0], encoder, limits=limits), base_url=BASE) as c:
        small = png_bytes(1, (40, 40))
        assert c.post("/api/search/image", files={"file": ("s.png", small)}).status_code == 200
        r = c.post("/api/search/image", files={"file": ("big.png", png_bytes(2, (60, 60)))})
        assert_json_error(r, 413)
        assert "too many pixels" in r.json()["error"]
        big = png_bytes(3, (100, 100))  # ~30 kB of noise: over 20,000 bytes
        assert len(big) > 20_000
        assert_json_error(c.post("/api/search/image", files={"file": ("b.png", big)}), 413)
        # over the body limit (upload + 1 MiB): refused from Content-Length before reading ...
        huge = b"\0" * (20_000 + (1 << 20) + 1)
        r = c.post("/api/classify", content=huge, headers={"content-type": "application/octet-stream"})
        assert_json_error(r, 413)
        # ... and while streaming when no Content-Length is sent (chunked)
        r = c.post("/api/search/image", content=iter([huge[:600_000], huge[600_000:]]),
                   headers={"content-type": "multipart/form-data; boundary=x"})
        assert_json_error(r, 413)
        assert c.get("/api/health").status_code == 200  # the server carries on


# ---- traversal and unknown ids -----------------------------------------------------------------
@pytest.mark.parametrize("kind", ["images", "thumbs"])
@pytest.mark.parametrize("tail,statuses", [
    ("../../../../etc/passwd", (404, 422)), ("..%2F..%2F..%2Fetc%2Fpasswd", (404, 422)),
    ("%2e%2e%2f%2e%2e%2fetc%2fpasswd", (404, 422)), ("%2Fetc%2Fpasswd", (404, 422)),
    ("/etc/passwd", (404, 422)), ("..", (404, 422)), ("abc", (422,)), ("1.5", (422,)),
    ("0", (422,)), ("-1", (422,)), ("99999", (404,)), ("99999999999999999999999", (422,)),
    ("1%00", (422,)), ("1?path=/etc/passwd", (200,)),
])
def test_traversal_and_bad_ids(client, kind, tail, statuses):
    r = client.get(f"/api/{kind}/{tail}")
    assert r.status_code in statuses, (r.status_code, r.text[:200])
    assert b"root:" not in r.content
    if r.status_code != 200:
        assert_json_error(r, r.status_code)
    else:  # ?path= is ignored: id 1 is served, from the index
        assert r.headers["content-type"].startswith("image/")


def test_static_traversal(client):
    for url in ("/static/../app.py", "/static/..%2fapp.py", "/static/%2e%2e/app.py", "/static//etc/passwd"):
        r = client.get(url)
        assert r.status_code == 404 and b"create_app" not in r.content and b"root:" not in r.content
    assert_json_error(client.get("/api/nope"), 404)


def test_file_gone_after_indexing(tmp_path, encoder):
    root = tmp_path / "photos"
    db = indexed_gallery(root, encoder, 3, name="a{}.png")
    with TestClient(create_app(db, encoder), base_url=BASE) as c:
        ids = ids_by_path(c)
        os.remove(root / "a1.png")
        for kind in ("images", "thumbs"):
            r = c.get(f"/api/{kind}/{ids['a1.png']}")
            assert_json_error(r, 404)
            assert "gone" in r.json()["error"]
        assert c.get(f"/api/thumbs/{ids['a0.png']}").status_code == 200
        # a file replaced after indexing (say by a link to something else) is not served
        os.remove(root / "a2.png")
        os.symlink(os.path.abspath(__file__), root / "a2.png")
        r = c.get(f"/api/images/{ids['a2.png']}")
        assert_json_error(r, 404)
        assert "outside the gallery" in r.json()["error"] and b"create_app" not in r.content
        make_image(7).save(root / "a0.png")  # rewritten in place: another size and time
        r = c.get(f"/api/images/{ids['a0.png']}")
        assert_json_error(r, 404)
        assert "changed on disk" in r.json()["error"]


def test_missing_database_fails_at_create(tmp_path, encoder):
    with pytest.raises(clipseek.ClipseekError, match="no clipseek database"):
        create_app(str(tmp_path / "none.db"), encoder)


# ---- token and hosts -------------------------------------------------------------------------------
def test_token(gallery, encoder):
    with TestClient(create_app(gallery[0], encoder, token="s3cret"), base_url=BASE) as c:
        good = {"Authorization": "Bearer s3cret"}
        for url in ("/api/health", "/api/stats", "/api/search?q=cat", "/api/thumbs/1", "/api/images/1",
                    "/api/nope"):
            r = c.get(url)
            assert_json_error(r, 401)
            assert r.headers["www-authenticate"] == "Bearer"
            assert_json_error(c.get(url, headers={"Authorization": "Bearer wrong"}), 401)
            assert_json_error(c.get(url, headers={"Authorization": "s3cret"}), 401)
        assert_json_error(c.post("/api/search/image", files={"file": ("x.png", png_bytes())}), 401)
        assert_json_error(c.post("/api/classify", files={"file": ("x.png", png_bytes())},
                                 data={"labels": "a,b"}), 401)
        assert c.get("/api/search?q=cat", headers=good).status_code == 200
        assert c.post("/api/classify", files={"file": ("x.png", png_bytes())}, data={"labels": "a,b"},
                      headers=good).status_code == 200
        # <img> tags: ?token= is accepted for GET images and thumbnails only
        assert c.get("/api/thumbs/1?token=s3cret").status_code == 200
        assert c.get("/api/images/1?token=s3cret").status_code == 200
        assert_json_error(c.get("/api/thumbs/1?token=wrong"), 401)
        assert_json_error(c.get("/api/search?q=cat&token=s3cret"), 401)
        assert_json_error(c.post("/api/search/image?token=s3cret",
                                 files={"file": ("x.png", png_bytes())}), 401)
        assert c.get("/").status_code == 200  # the page holds no data; it asks for the token


def test_allowed_hosts_stop_dns_rebinding(gallery, encoder):
    app = create_app(gallery[0], encoder, allowed_hosts=["127.0.0.1", "localhost"])
    with TestClient(app, base_url="http://127.0.0.1:8000") as c:
        assert c.get("/api/health").status_code == 200
        assert c.get("/api/health", headers={"host": "localhost:8000"}).status_code == 200
        assert_json_error(c.get("/api/health", headers={"host": "evil.example:8000"}), 400)
        assert_json_error(c.get("/", headers={"host": "evil.example"}), 400)


def test_exposure_warning():
    assert exposure_warning("127.0.0.1", None) is None
    assert exposure_warning("localhost", None) is None
    assert exposure_warning("::1", None) is None
    assert exposure_warning("0.0.0.0", "tok") is None
    for host in ("0.0.0.0", "192.168.1.5", "::", "myhost.example"):
        assert "WARNING" in exposure_warning(host, None) and "--token" in exposure_warning(host, None)


def test_common_root_is_a_folder_not_a_string_prefix(tmp_path):
    from clipseek.gallery.store import Store

    with Store.open(str(tmp_path / "s.db")) as s:
        assert s.common_root() is None
        vec = np.zeros(4, np.float32)
        with s.transaction():
            s.insert_files([("/data/b/x.png", 1, 1, "aa", 1, 1, vec)])
        assert s.common_root() == "/data/b"
        with s.transaction():
            s.insert_files([("/data/bc/y.png", 1, 1, "bb", 1, 1, vec), ("/data/b/z/w.png", 1, 1, "cc", 1, 1, vec)])
        assert s.common_root() == "/data"
