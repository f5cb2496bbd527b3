"""GET /api/dupes and the page's duplicates view (API in-process; the view in headless Chromium)."""

from __future__ import annotations

import pytest

from dupes_images import copies_of, photo
from helpers import app_client, index_folder, live_server

fastapi = pytest.importorskip("fastapi")

from clipseek.server import create_app  # noqa: E402


@pytest.fixture(scope="module")
def gallery(tmp_path_factory, encoder):
    root = tmp_path_factory.mktemp("dupes-api") / "photos"
    (root / "copies").mkdir(parents=True)
    for i in range(4):
        photo(i).save(root / f"p{i}.png")
    copies_of(root / "p0.png", root / "copies", "p0")
    db = index_folder(root, encoder)
    return db, root


def test_dupes_api(gallery, encoder):
    db, root = gallery
    with app_client(db, encoder) as c:
        body = c.get("/api/dupes").json()
        assert (body["total_groups"], body["extras"], body["similar"]) == (1, 4, False)
        (g,) = body["groups"]
        assert g["keep"] == "p0.png" and g["members"][0]["reason"] == "keep"
        assert sorted(m["path"] for m in g["members"][1:]) == ["copies/p0-bytes.png", "copies/p0-crop.png",
                                                               "copies/p0-half.png", "copies/p0-q60.jpg"]
        assert {m["link"] for m in g["members"][1:]} == {"p0.png"}
        for m in g["members"]:  # ids work for thumbnails and images
            assert c.get(f"/api/thumbs/{m['id']}").status_code == 200
        loose = c.get("/api/dupes", params={"similar": "true", "threshold": 0.0001}).json()
        assert loose["total_groups"] == 1 and len(loose["groups"][0]["members"]) == 8
        assert {m["reason"] for m in loose["groups"][0]["members"]} >= {"similar", "phash", "identical"}
        assert c.get("/api/dupes", params={"limit": 1}).status_code == 200
        for params, status in [({"threshold": 1.5}, 400), ({"threshold": "x"}, 422), ({"limit": 0}, 400)]:
            r = c.get("/api/dupes", params=params)
            assert r.status_code == status and r.json()["error"], (params, r.text)
        assert "/api/dupes" in c.get("/openapi.json").json()["paths"]


@pytest.mark.browser
def test_duplicates_view_in_chromium(gallery, encoder):
    from helpers import CHROMIUM, browser_or_fail

    sync_playwright = browser_or_fail()
    with live_server(create_app(gallery[0], encoder, allowed_hosts=["127.0.0.1"])) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page()
            page.goto(base + "/")
            page.click("#dupes-btn")
            page.wait_for_selector("#dupes-panel .dupe-group")
            assert page.locator(".dupe-group").count() == 1
            assert page.locator(".dupe-group .member").count() == 5
            assert page.locator(".member.keeper .member-path").inner_text().endswith("p0.png")
            assert "1 group, 4 extra copies" in page.inner_text("#status")
            page.wait_for_function("() => [...document.querySelectorAll('.dupe-group img')]"
                                   ".every(i => i.complete && i.naturalWidth > 0)")
            second = page.locator(".dupe-group .member .member-path").nth(1).inner_text()
            page.locator(".dupe-group .member .member-thumb").nth(1).click()
            page.wait_for_selector("#viewer", state="visible")
            assert second.endswith(page.inner_text("#viewer-name"))  # the viewer shows the member clicked
        finally:
            browser.close()
