"""Issue 23 (server): what `clipseek serve` hands out and to whom. A link swapped in under `serve
--watch` or planted by a database from someone else reads no secret; the Host check is always on; a
page on another origin cannot make the server work; every response carries the security headers and
references nothing external; a half-sent request header does not hold a connection; hostile rows
give JSON 4xx. Everything hostile is generated here."""

from __future__ import annotations

import io
import os
import shutil
import re
import socket
import sqlite3
import threading
import time

import pytest

import clipseek
from helpers import image_folder, make_image, wait_for

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from clipseek.server import create_app
from clipseek.server.checks import Limits

BASE = "http://127.0.0.1"
SECRET = b"TOP-SECRET root:x:0:0 password=hunter2\n" * 400


def assert_json_error(r, status):
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/json")
    assert isinstance(r.json()["error"], str) and r.json()["error"]


def png_bytes(seed=0, size=(40, 32)) -> bytes:
    buf = io.BytesIO()
    make_image(seed, size).save(buf, "PNG")
    return buf.getvalue()


def write_secret(path) -> os.stat_result:
    path.write_bytes(SECRET)
    os.chmod(path, 0o600)
    return os.stat(path)


def ids_by_path(c) -> dict[str, int]:
    res = c.get("/api/search", params={"q": "photo", "k": 100}).json()["results"]
    return {r["path"]: r["id"] for r in res}


@pytest.fixture
def gallery(tmp_path, encoder):
    """photos/ (p0..p3.png, link-good.png -> p0.png inside it) indexed into g.db; a secret outside."""
    root = image_folder(tmp_path / "photos", 4)
    os.symlink(root / "p0.png", root / "link-good.png")
    db = str(tmp_path / "g.db")
    with clipseek.Gallery(db, encoder) as g:
        assert g.index([str(root)]).added == 5
    return db, root, tmp_path


# ---- item 1: only a regular image file inside the gallery, opened without following a link -------
def test_a_link_swapped_in_under_serve_watch_reads_no_secret(tmp_path, encoder):
    """(a) holiday.png padded to the secret's size with its mtime copied, then atomically replaced
    by a link to the secret (`ln -sf SECRET x.tmp && mv -T x.tmp holiday.png`) while watched."""
    root = image_folder(tmp_path / "photos", 2)
    secret = tmp_path / "private" / "shadow"
    secret.parent.mkdir()
    st = write_secret(secret)
    png = png_bytes(7)
    assert len(png) < st.st_size
    (root / "holiday.png").write_bytes(png + b"\0" * (st.st_size - len(png)))  # still decodes
    os.utime(root / "holiday.png", ns=(st.st_atime_ns, st.st_mtime_ns))
    db = str(tmp_path / "g.db")
    with clipseek.Gallery(db, encoder) as g:
        g.index([str(root)])
    app = create_app(db, encoder)
    batches = []
    with TestClient(app, base_url=BASE) as c:
        app.state.service.watch([str(root)], poll=True, interval=0.1, quiet=0.2, on_batch=batches.append)
        assert wait_for(lambda: len(batches) >= 1)
        hid = ids_by_path(c)["holiday.png"]
        assert c.get(f"/api/images/{hid}").status_code == 200  # the picture itself is served
        os.symlink(secret, root / "x.tmp")
        os.replace(root / "x.tmp", root / "holiday.png")
        assert (os.stat(root / "holiday.png").st_size, os.stat(root / "holiday.png").st_mtime_ns) == \
            (st.st_size, st.st_mtime_ns)  # size and mtime cannot tell the link from the picture
        wait_for(lambda: len(batches) >= 2, timeout=10)  # the watcher saw the swap (or not: same answer)
        for kind in ("images", "thumbs"):
            r = c.get(f"/api/{kind}/{hid}")
            assert_json_error(r, 404)
            assert b"TOP-SECRET" not in r.content and b"hunter2" not in r.content


def _point_row(db: str, row_id: int, path, st: os.stat_result | None = None, hash_=None) -> None:
    """A hostile database: row `row_id` now names `path` (with `st`'s size and mtime, and `hash_`)."""
    with sqlite3.connect(db) as con:
        if st is not None:
            con.execute("UPDATE files SET size = ?, mtime_ns = ? WHERE id = ?", (st.st_size, st.st_mtime_ns, row_id))
        con.execute("UPDATE files SET path = ? WHERE id = ?", (path, row_id))
        if hash_ is not None:
            con.execute("UPDATE files SET hash = ? WHERE id = ?", (hash_, row_id))


def test_hostile_database_rows_read_nothing_outside_the_gallery(gallery, encoder):
    """(b) rows of a database from someone else that name links to a secret, a secret named like a
    picture, a picture outside the gallery's folders, and a folder link leading out: all 404."""
    db, root, tmp = gallery
    outside = tmp / "private"
    outside.mkdir()
    secret_st = write_secret(outside / "notes.txt")
    make_image(30).save(outside / "private.png")
    (root / "evil").mkdir()
    os.symlink(outside / "notes.txt", root / "evil" / "x.jpg")            # inside, pointing out
    os.symlink(outside, root / "leads-out")                                # a folder link leading out
    (root / "notes.jpg").write_bytes(SECRET)                               # a secret named like a picture
    os.utime(root / "notes.jpg", ns=(secret_st.st_atime_ns, secret_st.st_mtime_ns))
    with TestClient(create_app(db, encoder), base_url=BASE) as c:
        ids = ids_by_path(c)
        assert c.get(f"/api/images/{ids['link-good.png']}").content == (root / "p0.png").read_bytes()
        cases = {ids["p0.png"]: (str(root / "evil" / "x.jpg"), secret_st),
                 ids["p1.png"]: (str(outside / "notes.txt"), secret_st),
                 ids["p2.png"]: (str(root / "notes.jpg"), os.stat(root / "notes.jpg")),
                 ids["p3.png"]: (str(outside / "private.png"), os.stat(outside / "private.png")),
                 ids["link-good.png"]: (str(root / "leads-out" / "private.png"), os.stat(outside / "private.png"))}
        for row_id, (path, st) in cases.items():
            _point_row(db, row_id, path, st)
        # what `index` made is of the content it indexed (named by its hash), never of these files:
        # this test is about what the server reads from disk for such rows
        shutil.rmtree(db + ".thumbs", ignore_errors=True)
        private = (outside / "private.png").read_bytes()
        for row_id, (path, _) in cases.items():
            for kind in ("images", "thumbs"):
                r = c.get(f"/api/{kind}/{row_id}")
                assert_json_error(r, 404)
                assert b"TOP-SECRET" not in r.content and private not in r.content, (path, kind)


def test_the_gallerys_roots_are_recorded_and_served_from(tmp_path, fake_encoder):
    """`index DIR` and `index --from-parquet` record the folders served from; a database that
    recorded none (an older one) is served from its files' common folder."""
    from clipseek.embed.job import embed_job
    from clipseek.gallery.roots import gallery_roots
    from clipseek.gallery.store import Store

    a = image_folder(tmp_path / "a", 2)
    b = image_folder(tmp_path / "elsewhere" / "b", 2, name="b{}.png")
    db = str(tmp_path / "g.db")
    with clipseek.Gallery(db, fake_encoder) as g:
        g.index([str(a)])
        embed_job(str(b), str(tmp_path / "shards"), fake_encoder, shard_size=4)
        g.index_parquet(str(tmp_path / "shards"))
    with Store.open(db, create=False) as s:
        assert gallery_roots(s) == [str(a), str(b)]

    def served():
        with TestClient(create_app(db, fake_encoder), base_url=BASE) as c:
            return {p: c.get(f"/api/images/{i}").status_code for p, i in ids_by_path(c).items()}

    assert set(served().values()) == {200} and len(served()) == 4
    with sqlite3.connect(db) as con:
        con.execute("DELETE FROM meta WHERE key = 'roots'")
    assert set(served().values()) == {200}  # the common folder of its files


def test_a_fifo_or_device_swapped_in_is_refused_without_blocking(gallery, encoder):
    db, root, _ = gallery
    with TestClient(create_app(db, encoder), base_url=BASE) as c:
        ids = ids_by_path(c)
        st = os.stat(root / "p1.png")
        os.remove(root / "p1.png")
        os.mkfifo(root / "p1.png")
        _point_row(db, ids["p1.png"], str(root / "p1.png"), os.stat(root / "p1.png"))
        t0 = time.perf_counter()
        assert_json_error(c.get(f"/api/images/{ids['p1.png']}"), 404)
        assert_json_error(c.get(f"/api/thumbs/{ids['p1.png']}"), 404)
        assert time.perf_counter() - t0 < 10 and st.st_size


# ---- item 12: hostile row values are a JSON 4xx, never a plain-text 500 ---------------------------
@pytest.mark.parametrize("column,value", [
    ("hash", "../../etc/passwd"), ("hash", "zz-not-hex"), ("hash", ""), ("hash", b"\x00ab"),
    ("path", "/etc/pass\0wd.png"), ("path", "relative/p.png"), ("path", 42), ("path", b"\xff\0.png"),
])
def test_hostile_row_values_give_json_4xx(gallery, encoder, column, value):
    db, _, _ = gallery
    with TestClient(create_app(db, encoder), base_url=BASE) as c:
        row_id = ids_by_path(c)["p2.png"]
        with sqlite3.connect(db) as con:
            con.execute(f"UPDATE files SET {column} = ? WHERE id = ?", (value, row_id))
        for kind in ("thumbs", "images") if column == "path" else ("thumbs",):
            assert_json_error(c.get(f"/api/{kind}/{row_id}"), 404)
        assert c.get("/api/health").status_code == 200


@pytest.mark.parametrize("url", ["/api/search?q=cat&in=a%00b", "/api/search?q=a%00b",
                                 "/api/search?q=cat&ext=jp%00g", "/api/search?q=cat&add=image:1%00",
                                 "/api/search?q=cat&min-size=1%00x2", "/api/search?q=cat&after=2020%00",
                                 "/api/images/1%00", "/api/thumbs/%00", "/api/dupes?threshold=%00",
                                 "/static/%00", "/%00"])
def test_nul_bytes_in_requests_give_json_4xx(gallery, encoder, url):
    db, _, _ = gallery
    with TestClient(create_app(db, encoder), base_url=BASE) as c:
        r = c.get(url)
        assert r.status_code < 500, (url, r.status_code, r.text[:200])
        if r.status_code >= 400:
            assert_json_error(r, r.status_code)


def test_an_unexpected_error_is_a_json_500_with_the_headers(gallery, encoder):
    db, _, _ = gallery
    app = create_app(db, encoder)
    with TestClient(app, base_url=BASE, raise_server_exceptions=False) as c:
        app.state.service.stats = lambda: 1 / 0
        r = c.get("/api/stats")
        assert_json_error(r, 500)
        assert "ZeroDivision" not in r.text and "Traceback" not in r.text
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["content-security-policy"]


# ---- item 3: the Host check is always on -----------------------------------------------------------
def test_host_check_on_a_wildcard_bind(gallery, encoder):
    db, _, _ = gallery
    with TestClient(create_app(db, encoder, host="0.0.0.0", allowed_hosts=["photos.example"]),
                    base_url="http://127.0.0.1:8000") as c:
        assert_json_error(c.get("/api/stats", headers={"host": "attacker.example"}), 400)
        assert_json_error(c.get("/", headers={"host": "attacker.example:8000"}), 400)
        assert_json_error(c.get("/api/stats", headers={"host": "127.0.0.1.attacker.example"}), 400)
        for host in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000", "192.168.1.5:8000", "[fe80::1]:8000",
                     socket.gethostname(), socket.getfqdn() + ":8000", "photos.example", "PHOTOS.example.:443"):
            assert c.get("/api/stats", headers={"host": host}).status_code == 200, host


def test_host_check_on_a_bound_address(gallery, encoder):
    db, _, _ = gallery
    with TestClient(create_app(db, encoder, host="10.1.2.3"), base_url="http://10.1.2.3:8000") as c:
        assert c.get("/api/stats").status_code == 200
        assert c.get("/api/stats", headers={"host": "localhost:8000"}).status_code == 200
        assert_json_error(c.get("/api/stats", headers={"host": "10.9.9.9:8000"}), 400)  # not this bind
        assert_json_error(c.get("/api/stats", headers={"host": "rebind.attacker.example"}), 400)
        assert_json_error(c.get("/api/stats", headers={"host": ""}), 400)


def test_cli_refuses_a_network_bind_without_a_token(gallery, monkeypatch, capsys):
    import uvicorn

    from clipseek.cli import main

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    for host in ("0.0.0.0", "::", "192.168.1.5"):
        assert main(["serve", "--db", gallery[0], "--host", host]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--token" in err and "--no-token" in err and "Traceback" not in err
    assert main(["serve", "--db", gallery[0], "--host", "0.0.0.0", "--token", "t", "--no-token"]) == 2
    assert "contradict" in capsys.readouterr().err
    assert not calls  # refused before anything was loaded or bound
    assert main(["serve", "--db", gallery[0], "--host", "0.0.0.0", "--token", "t",
                 "--allow-host", "photos.example", "--allow-host", "nas.local"]) == 0
    app, _ = calls[0]
    with TestClient(app, base_url=BASE) as c:
        auth = {"authorization": "Bearer t"}
        assert c.get("/api/health", headers={**auth, "host": "photos.example"}).status_code == 200
        assert c.get("/api/health", headers={**auth, "host": "nas.local:8000"}).status_code == 200
        assert c.get("/api/health", headers={**auth, "host": "attacker.example"}).status_code == 400


# ---- item 4: no cross-site work ------------------------------------------------------------------------
def test_cross_origin_requests_do_no_work(gallery, encoder):
    db, _, _ = gallery
    app = create_app(db, encoder, host="0.0.0.0")
    svc = app.state.service
    used = []
    for name in ("classify", "submit_search_text", "search_image", "dupes", "options"):
        real = getattr(svc, name)

        def spy(*a, _name=name, _real=real, **kw):
            used.append(_name)
            return _real(*a, **kw)
        setattr(svc, name, spy)
    form = {"files": {"file": ("x.png", png_bytes())}, "data": {"labels": "\n".join(f"l{i}" for i in range(900))}}
    with TestClient(app, base_url="http://127.0.0.1:8000") as c:
        for origin in ("http://evil.example", "null", "http://127.0.0.1.evil.example:8000",
                       "http://127.0.0.1:9999", "https://localhost:8000"):
            r = c.post("/api/classify", headers={"origin": origin}, **form)
            assert_json_error(r, 403)
        for headers in ({"origin": "http://evil.example"}, {"sec-fetch-site": "cross-site"},
                        {"sec-fetch-site": "same-site"}):
            assert_json_error(c.get("/api/search", params={"q": "cat"}, headers=headers), 403)
            assert_json_error(c.get("/api/dupes", headers=headers), 403)
            assert_json_error(c.post("/api/search/image", files=form["files"], headers=headers), 403)
        assert used == []  # the model thread never saw them
        # the page itself, and clients without an Origin (curl, scripts), work
        assert c.post("/api/classify", headers={"origin": "http://127.0.0.1:8000"}, **form).status_code == 200
        assert c.post("/api/classify", **form).status_code == 200
        assert c.get("/api/search", params={"q": "cat"}, headers={"sec-fetch-site": "same-origin"}).status_code == 200
        assert c.get("/api/search", params={"q": "cat"}, headers={"sec-fetch-site": "none"}).status_code == 200
        # images and thumbnails are for <img> tags and links, from anywhere (with the token if one is set)
        assert c.get("/api/thumbs/1", headers={"sec-fetch-site": "cross-site"}).status_code == 200
        assert used.count("classify") == 2


# ---- item 5: nothing external, the security headers everywhere -----------------------------------------
def test_every_response_has_the_security_headers_and_no_external_url(gallery, encoder):
    from clipseek.server.app import STATIC_DIR

    db, _, _ = gallery
    app = create_app(db, encoder, token="tok", limits=Limits(max_upload_bytes=1000))
    auth = {"authorization": "Bearer tok"}
    png = png_bytes()
    with TestClient(app, base_url=BASE) as c:
        responses = [c.get("/"), c.get("/docs"), c.get("/redoc"), c.get("/openapi.json"), c.get("/nope"),
                     c.get("/api/health"), c.get("/api/health", headers=auth), c.get("/api/stats", headers=auth),
                     c.get("/api/search?q=cat", headers=auth), c.get("/api/search?q=", headers=auth),
                     c.get("/api/search?q=cat&k=0", headers=auth), c.get("/api/images/1", headers=auth),
                     c.get("/api/thumbs/1?token=tok"), c.get("/api/images/99999", headers=auth),
                     c.get("/api/images/abc", headers=auth), c.get("/api/nope", headers=auth),
                     c.delete("/api/search", headers=auth), c.get("/api/dupes", headers=auth),
                     c.get("/api/stats", headers={"host": "evil.example"}),
                     c.get("/api/stats", headers={**auth, "origin": "http://evil.example"}),
                     c.post("/api/classify", headers=auth, files={"file": ("x.png", png)}, data={"labels": "a"}),
                     c.post("/api/search/image", headers={**auth, "content-length": "99999999"}, content=b"x")]
        responses += [c.get(f"/static/{name}") for name in sorted(os.listdir(STATIC_DIR))]
        assert {r.status_code for r in responses} >= {200, 400, 401, 403, 404, 405, 413, 422}
        for r in responses:
            where = (r.request.method, str(r.request.url), r.status_code)
            assert r.headers.get("x-content-type-options") == "nosniff", where
            csp = r.headers.get("content-security-policy", "")
            assert "default-src 'self'" in csp and "script-src 'self'" in csp and "http" not in csp, where
            assert not re.search(rb"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", r.content, re.IGNORECASE) or \
                r.headers["content-type"].startswith("image/"), where  # nothing loaded from elsewhere


# ---- item 6: a half-sent request header does not hold a connection ------------------------------------
def _start(app, header_timeout: float):
    import uvicorn

    from clipseek.server.protocol import uvicorn_options

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning", **uvicorn_options(header_timeout)))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    assert wait_for(lambda: srv.started, 30)
    return srv, thread, sock.getsockname()[1]


def _closed_after(port: int, sent: bytes, limit: float) -> float | None:
    """Seconds until the server closed a connection that sent `sent` (None: still open at `limit`)."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(sent)
        s.settimeout(limit)
        t0 = time.perf_counter()
        try:
            while s.recv(4096):
                pass
        except TimeoutError:
            return None
        return time.perf_counter() - t0


def test_a_half_sent_header_is_cut_off(gallery, encoder):
    db, _, _ = gallery
    srv, thread, port = _start(create_app(db, encoder), header_timeout=2.0)
    try:
        for sent in (b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a", b""):
            took = _closed_after(port, sent, limit=6.0)
            assert took is not None and 1.0 < took < 6.0, took
        # a request whose headers arrive in time is answered, also when it then waits (a slow body)
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            s.settimeout(5)
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
    finally:
        srv.should_exit = True
        thread.join(10)


def test_serve_passes_the_header_timeout_to_uvicorn(gallery, monkeypatch, capsys):
    import uvicorn

    from clipseek.cli import main

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(kw))
    assert main(["serve", "--db", gallery[0], "--header-timeout", "3"]) == 0
    assert calls[0]["http"].header_timeout == 3.0
    for bad in ("0", "nan", "-1", "inf"):
        assert main(["serve", "--db", gallery[0], "--header-timeout", bad]) == 2
        assert "--header-timeout" in capsys.readouterr().err
