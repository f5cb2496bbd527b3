"""`clipseek serve` through the CLI: host/port/token handling, the banner, and a missing database."""

import pytest

from helpers import indexed_gallery

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

BASE = "http://127.0.0.1"


@pytest.fixture(scope="module")
def gallery(tmp_path_factory, encoder):
    root = tmp_path_factory.mktemp("serve") / "photos"
    return indexed_gallery(root, encoder, 12, lambda i: (40 + 2 * i, 36)), str(root)


def test_cli_serve(gallery, tiny_ckpt, monkeypatch, capsys):
    import uvicorn

    from clipseek.cli import main

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    assert main(["serve", "--db", gallery[0], "--host", "0.0.0.0", "--port", "8123", "--no-token"]) == 0
    assert "WARNING" in capsys.readouterr().err
    app, kw = calls[0]
    assert kw["host"] == "0.0.0.0" and kw["port"] == 8123
    with TestClient(app, base_url=BASE) as c:
        assert len(c.get("/api/search", params={"q": "cat", "k": 2}).json()["results"]) == 2
    assert main(["serve", "--db", gallery[0], "--token", "t"]) == 0
    err = capsys.readouterr().err
    assert "WARNING" not in err and "12 images in" in err and "http://127.0.0.1:8000/?token=TOKEN" in err
    with TestClient(calls[1][0], base_url=BASE) as c:  # loopback: token required, Host checked
        assert c.get("/api/health").status_code == 401
        assert c.get("/api/health", headers={"host": "evil.example"}).status_code == 400
    assert main(["serve", "--db", gallery[0] + ".missing"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no clipseek database" in err
