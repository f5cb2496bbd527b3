"""The web page in a real browser: uvicorn on 127.0.0.1 (free port, background thread), headless
Chromium (Debian's /usr/bin/chromium) driven by Playwright. Loads the page with a token, searches by
text, opens an image, classifies an upload (bars) and searches by it.

CI installs Chromium (scripts/setup.sh), so a missing browser FAILS these tests. Deselect them with
`pytest -m "not browser"` on a machine without Chromium. Set CLIPSEEK_E2E_SHOTS=DIR to keep the screenshots.
"""

from __future__ import annotations

import os
import shutil

import pytest

from helpers import CHROMIUM, TOKEN, browser_or_fail, index_folder, live_server, shape_image

pytestmark = pytest.mark.browser  # `pytest -m "not browser"` deselects the whole module


@pytest.fixture(scope="module")
def server(tmp_path_factory, encoder):
    from clipseek.server import create_app

    root = tmp_path_factory.mktemp("e2e") / "photos"
    (root / "holiday").mkdir(parents=True)
    for i in range(16):
        shape_image(i).save(root / ("holiday" if i % 4 == 0 else ".") / f"shape{i:02d}.png")
    db = index_folder(root, encoder)
    with live_server(create_app(db, encoder, token=TOKEN, allowed_hosts=["127.0.0.1", "localhost"])) as base:
        yield base, root


def test_page_search_view_classify_in_chromium(server, tmp_path):
    sync_playwright = browser_or_fail()
    base, root = server
    shots = os.environ.get("CLIPSEEK_E2E_SHOTS") or str(tmp_path)
    os.makedirs(shots, exist_ok=True)
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
        try:
            page.goto(base + "/?token=" + TOKEN)
            assert "token" not in page.url  # taken from the address bar into localStorage
            page.wait_for_function("() => document.getElementById('stats').textContent.includes('16 images')")

            # text search -> a grid of thumbnails with scores
            page.select_option("#k", "12")
            page.fill("#q", "a red circle")
            page.press("#q", "Enter")
            page.wait_for_function("() => document.querySelectorAll('#grid .card').length === 12")
            page.wait_for_function("() => [...document.querySelectorAll('#grid img')]"
                                   ".every(i => i.complete && i.naturalWidth > 0)")
            scores = [float(s) for s in page.locator("#grid .score").all_inner_texts()]
            assert scores == sorted(scores, reverse=True)
            assert "12 results" in page.inner_text("#status")
            page.screenshot(path=os.path.join(shots, "search.png"))

            # clicking a result opens the full image
            first_path = page.locator("#grid .caption").first.inner_text()
            page.locator("#grid .card").first.click()
            page.wait_for_function("() => document.getElementById('viewer-img').naturalWidth === 200")
            assert page.inner_text("#viewer-name") == first_path
            assert "200 × 150 px" in page.inner_text("#viewer-details")
            page.keyboard.press("Escape")
            assert page.locator("#viewer").is_hidden()

            # pick an image, classify it against typed labels -> bars
            page.set_input_files("#file", str(root / "shape03.png"))
            page.wait_for_selector("#image-actions", state="visible")
            page.fill("#labels", "red circle, blue square, green tree, a dog")
            page.click("#classify-btn")
            page.wait_for_function("() => document.querySelectorAll('#bars .bar-row').length === 4")
            values = [float(v.rstrip("%")) for v in page.locator("#bars .bar-value").all_inner_texts()]
            assert abs(sum(values) - 100) < 0.5 and values == sorted(values, reverse=True)
            assert "softmax" in page.inner_text("#scoring-note")  # the page says how scores were made
            widths = page.eval_on_selector_all("#bars .bar-fill",
                                               "els => els.map(e => e.getBoundingClientRect().width)")
            assert widths == sorted(widths, reverse=True) and widths[0] > 0
            page.screenshot(path=os.path.join(shots, "classify.png"), full_page=True)

            # and search by the same image: it comes first, with cosine ~1
            page.click("#similar-btn")
            page.wait_for_function("() => document.querySelectorAll('#grid .card').length === 12")
            assert page.locator("#grid .caption").first.inner_text() == "shape03.png"
            assert float(page.locator("#grid .score").first.inner_text()) > 0.999
        finally:
            browser.close()
    assert not problems, problems  # no script errors, no CSP violations, no failed requests


def test_page_asks_for_the_token(server):
    sync_playwright = browser_or_fail()
    base, _ = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page()
            page.goto(base + "/")
            page.wait_for_selector("#token-form", state="visible")
            page.fill("#token", TOKEN)
            page.click("#token-form button")
            page.wait_for_function("() => document.getElementById('stats').textContent.includes('16 images')")
            assert page.locator("#token-form").is_hidden()
        finally:
            browser.close()


def test_drop_an_image_then_find_similar(server):
    import base64

    sync_playwright = browser_or_fail()
    base, root = server
    data = base64.b64encode((root / "shape05.png").read_bytes()).decode()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page()
            page.goto(base + "/?token=" + TOKEN)
            page.evaluate("""(b64) => {
                const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
                const dt = new DataTransfer();
                dt.items.add(new File([bytes], "dropped.png", {type: "image/png"}));
                document.getElementById("drop").dispatchEvent(
                    new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
            }""", data)
            page.wait_for_selector("#preview", state="visible")
            assert page.inner_text("#drop-title") == "dropped.png"
            page.click("#similar-btn")  # the start page already shows the gallery: wait for the answer's count
            page.wait_for_function("() => / results for /.test(document.getElementById('status').innerText)")
            assert page.locator("#grid .caption").first.inner_text() == "shape05.png"
        finally:
            browser.close()


def test_chromium_is_installed_where_ci_expects_it():
    """Guards against the e2e test silently not running: CI must have the browser."""
    assert shutil.which(CHROMIUM) or os.path.isfile(CHROMIUM), f"no Chromium at {CHROMIUM}"
