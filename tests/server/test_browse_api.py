"""/api/browse (the gallery newest first, paged by a cursor), /api/folders (folder and month counts),
cursor paging and `matched` in /api/search, and the details /api/dupes gives for deciding."""

from __future__ import annotations

import datetime as dt
import os

import numpy as np
import pytest

import clipseek
from clipseek.gallery.search.browse import Timeline
from conftest import make_image

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from clipseek.server import create_app  # noqa: E402

ODD = b"caf\xe9-<b>"  # a folder name that is not UTF-8 and holds markup


def ns(y, m, d=1):
    return int(dt.datetime(y, m, d, 12, tzinfo=dt.timezone.utc).timestamp()) * 10 ** 9


@pytest.fixture(scope="module")
def gallery(tmp_path_factory, encoder):
    root = tmp_path_factory.mktemp("browse") / "photos"
    (root / "trip" / "day2").mkdir(parents=True)
    odd = os.path.join(os.fsencode(str(root)), ODD)
    os.mkdir(odd)
    when = {}
    for i in range(12):
        folder = [str(root), str(root / "trip"), str(root / "trip" / "day2")][i % 3]
        path = os.path.join(folder, f"p{i:02d}.png")
        make_image(i, (40 + i, 40)).save(path)
        when[path] = ns(2024, 1 + i % 6, 1 + i)
        os.utime(path, ns=(when[path], when[path]))
    make_image(99).save(os.path.join(odd, b"x.png"))
    os.utime(os.path.join(odd, b"x.png"), ns=(ns(2023, 12), ns(2023, 12)))
    make_image(3, (43, 40)).save(root / "copy.png")  # a duplicate of p03
    os.utime(root / "copy.png", ns=(ns(2022, 5), ns(2022, 5)))
    db = str(root.parent / "g.db")
    with clipseek.Gallery(db, encoder) as g:
        g.index([str(root)])
    return db, str(root)


@pytest.fixture(scope="module")
def client(gallery, encoder):
    with TestClient(create_app(gallery[0], encoder), base_url="http://127.0.0.1") as c:
        yield c


def walk(client, limit, **params):
    seen, cursor, pages = [], None, 0
    while True:
        r = client.get("/api/browse", params={**params, "limit": limit, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        body = r.json()
        seen += body["results"]
        pages += 1
        cursor = body["cursor"]
        if not cursor:
            return seen, body["total"], pages


def test_browse_pages_the_whole_gallery_newest_first(client):
    items, total, pages = walk(client, 5)
    assert total == 14 and len(items) == 14 and pages == 3
    assert len({i["id"] for i in items}) == 14
    taken = [i["taken"] for i in items]
    assert taken == sorted(taken, reverse=True)
    assert taken[0].startswith("2024-06") and taken[-1].startswith("2022-05")
    first = items[0]
    assert {"path", "folder", "width", "height", "size"} <= set(first)
    assert any(i["folder"] == "caf\udce9-<b>" for i in items)  # the bytes survive as \udcXX escapes


def test_browse_within_a_folder_and_a_time_range(client):
    items, total, _ = walk(client, 2, **{"in": "trip"})
    assert total == 8 and {i["folder"] for i in items} == {"trip", os.path.join("trip", "day2")}
    items, total, _ = walk(client, 3, after="2024-03-01", before="2024-05-01")
    assert total == 4 and all(i["taken"][:7] in ("2024-03", "2024-04") for i in items)


def test_folders_and_months_count_the_images(client):
    body = client.get("/api/folders").json()
    counts = {f["path"]: f["count"] for f in body["folders"]}
    assert counts == {"": 5, "trip": 4, os.path.join("trip", "day2"): 4, "caf\udce9-<b>": 1}
    months = [(m["month"], m["count"]) for m in body["months"]]
    assert months[0] == ("2024-06", 2) and months[-1] == ("2022-05", 1)
    assert sum(c for _, c in months) == 14


@pytest.mark.parametrize("params, status", [({"cursor": "nonsense"}, 400), ({"cursor": "1.0"}, 400),
                                            ({"limit": 0}, 422), ({"limit": 501}, 422),
                                            ({"after": "yesterday"}, 400)])
def test_browse_refuses_bad_values(client, params, status):
    r = client.get("/api/browse", params=params)
    assert r.status_code == status and r.json()["error"]


def test_search_pages_by_cursor_with_the_count_matched(client):
    whole = client.get("/api/search", params={"q": "a photo", "k": 9}).json()
    assert whole["matched"] == 14 and whole["cursor"] == "9"
    first = client.get("/api/search", params={"q": "a photo", "k": 4}).json()
    second = client.get("/api/search", params={"q": "a photo", "k": 4, "cursor": first["cursor"]}).json()
    assert [r["id"] for r in first["results"] + second["results"]] == [r["id"] for r in whole["results"][:8]]
    last = client.get("/api/search", params={"q": "a photo", "k": 10, "cursor": "10"}).json()
    assert len(last["results"]) == 4 and last["cursor"] is None  # the ranking ends
    inside = client.get("/api/search", params={"q": "a photo", "in": "trip"}).json()
    assert inside["matched"] == 8


@pytest.mark.parametrize("cursor", ["-1", "x", "195"])
def test_search_cursor_past_the_limit_or_bad_is_refused(client, cursor):
    r = client.get("/api/search", params={"q": "a photo", "k": 10, "cursor": cursor})
    assert r.status_code == 400 and "cursor" in r.json()["error"]


def test_dupes_give_dates_the_keepers_reason_and_the_command(client):
    body = client.get("/api/dupes").json()
    group = next(g for g in body["groups"] if any(m["path"] == "copy.png" for m in g["members"]))
    assert group["keep_reason"] and group["keep"] in [m["path"] for m in group["members"]]
    assert all(m["taken"] and m["size"] > 0 for m in group["members"])
    assert body["command"] == "clipseek dupes --db ../g.db --move-extras-to DIR"


def test_timeline_orders_ties_by_id_and_resumes_after_the_cursor():
    class F:
        ids = np.arange(1, 8, dtype=np.int64)
        when_ns = np.array([5, 9, 5, 1, 9, 5, 0], np.int64)
    tl = Timeline(F)
    mask = np.array([1, 1, 1, 0, 1, 1, 1], bool)
    out, cursor = [], None
    while True:
        p = tl.page(mask, cursor, 2)
        out += p.ids.tolist()
        cursor = p.cursor
        if not cursor:
            break
    assert out == [5, 2, 6, 3, 1, 7] and p.total == 6


def test_info_gives_an_images_details(client):
    item = walk(client, 20)[0][0]
    assert client.get(f"/api/info/{item['id']}").json() == item
    r = client.get("/api/info/999999")
    assert r.status_code == 404 and r.json()["error"]
