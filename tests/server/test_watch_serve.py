"""`clipseek serve --watch DIR`: the server's searches see images added while it runs, no restart."""

from __future__ import annotations

import shutil

import pytest

import clipseek
from helpers import indexed_gallery, make_image, wait_for

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from clipseek.server import create_app  # noqa: E402


def test_searches_see_new_images_and_a_deleted_folder_is_reported(tmp_path, encoder):
    root = tmp_path / "photos"
    db = indexed_gallery(root, encoder, 3)
    batches, stops = [], []
    app = create_app(db, encoder)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        svc = app.state.service
        w = svc.watch([str(root)], poll=True, interval=0.1, quiet=0.3, on_batch=batches.append,
                      on_stop=stops.append)
        assert w.mode == "polling" and wait_for(lambda: len(batches) == 1)  # the first pass
        make_image(50).save(root / "new.png")
        assert wait_for(lambda: c.get("/api/stats").json()["images"] == 4)
        res = c.get("/api/search", params={"q": "photo", "k": 10}).json()["results"]
        assert "new.png" in {r["path"] for r in res}
        new_id = next(r["id"] for r in res if r["path"] == "new.png")
        assert c.get(f"/api/thumbs/{new_id}").status_code == 200
        shutil.rmtree(root)
        assert wait_for(lambda: len(stops) == 1)
        assert "was deleted; stopped watching" in str(stops[0])
        assert c.get("/api/stats").json()["images"] == 4  # still serving what was indexed
    assert svc._watching is None  # closing the app stopped the watcher


def test_cli_serve_watch_makes_a_new_gallery(tmp_path, tiny_ckpt, monkeypatch, capsys):
    import uvicorn

    from clipseek.cli import main

    root = tmp_path / "photos"
    root.mkdir()
    for i in range(2):
        make_image(i).save(root / f"p{i}.png")
    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(app))
    db = tmp_path / "new.db"
    assert main(["serve", "--db", str(db), "--model", tiny_ckpt, "--watch", str(root), "--poll",
                 "--poll-interval", "0.1"]) == 0
    err = capsys.readouterr().err
    assert "2 images in" in err and "watching" in err and "polling every 0.1 s" in err
    with TestClient(calls[0], base_url="http://127.0.0.1") as c:
        make_image(9).save(root / "p9.png")
        assert wait_for(lambda: c.get("/api/stats").json()["images"] == 3)
    assert "1 added (3 images)" in capsys.readouterr().err
    assert main(["serve", "--db", str(db), "--watch", str(tmp_path / "nope")]) == 2
    assert "folder not found" in capsys.readouterr().err


def test_a_watching_server_is_the_gallerys_one_writer(tmp_path, encoder):
    from clipseek._io import writer_lock
    from clipseek.errors import BusyError

    root = tmp_path / "photos"
    root.mkdir()
    make_image(0).save(root / "p0.png")
    db = str(tmp_path / "g.db")
    with clipseek.Gallery(db, encoder) as g:
        g.index([str(root)])
    batches = []
    app = create_app(db, encoder)
    with TestClient(app, base_url="http://127.0.0.1"):
        app.state.service.watch([str(root)], poll=True, interval=0.1, quiet=0.3, on_batch=batches.append)
        assert wait_for(lambda: len(batches) == 1)
        with pytest.raises(BusyError):  # another `clipseek index` would exit at once
            with writer_lock(db + ".lock", db, BusyError):
                pass
        with pytest.raises(BusyError):
            clipseek.Gallery(db, encoder).index([str(root)])
    with writer_lock(db + ".lock", db, BusyError):  # the server closed: the lock is free
        pass


def test_writing_is_reentrant(tmp_path, encoder):
    root = tmp_path / "photos"
    root.mkdir()
    make_image(0).save(root / "p0.png")
    with clipseek.Gallery(str(tmp_path / "g.db"), encoder) as g:
        with g.writing():
            assert g.index([str(root)]).added == 1 and g.index([str(root)]).unchanged == 1
