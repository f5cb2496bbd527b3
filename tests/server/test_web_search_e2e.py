"""The page as a place to search from, in headless Chromium: a filter, a "+" term, "more like this",
the relevant-only divider, an address that reproduces the search when opened again, and Back.

Results are checked against the library (the same search in-process), so the page shows what
`Gallery.search` finds. Marker `browser`, like test_web_e2e.py (CI installs Chromium);
CLIPSEEK_E2E_SHOTS=DIR keeps the screenshot.
"""

from __future__ import annotations

import os
from urllib.parse import parse_qs, urlparse

import pytest

import clipseek
from clipseek.gallery.query import Filter
from helpers import CHROMIUM, TOKEN, browser_or_fail, index_folder, live_server, shape_image

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def site(tmp_path_factory, encoder):
    from clipseek.server import create_app

    root = tmp_path_factory.mktemp("e2e-search") / "photos"
    (root / "holiday").mkdir(parents=True)
    for i in range(20):
        size = (200, 150) if i % 3 else (150, 200)  # some portrait
        shape_image(i, size).save(root / ("holiday" if i % 4 == 0 else ".") / f"shape{i:02d}.png")
    db = index_folder(root, encoder)
    with live_server(create_app(db, encoder, token=TOKEN, allowed_hosts=["127.0.0.1", "localhost"])) as base:
        yield base, root, db


def captions(page) -> list[str]:
    return page.locator("#grid .caption").all_inner_texts()


def wait_for_results(page, n=None):
    page.wait_for_function("() => /results for|No results|No image/i.test(document.getElementById('status')"
                           ".textContent)")
    if n is not None:
        page.wait_for_function(f"() => document.querySelectorAll('#grid .card').length === {n}")


def library(db, encoder, root, k, **kw) -> list[str]:
    with clipseek.Gallery(db, encoder) as g:
        return [os.path.relpath(r.path, root) for r in g.search(k=k, **kw)]


def test_filter_plus_term_divider_address_and_back(site, encoder, tmp_path):
    sync_playwright = browser_or_fail()
    base, root, db = site
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        page = context.new_page()
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
        try:
            page.goto(base + "/?token=" + TOKEN)
            page.wait_for_function("() => document.getElementById('stats').textContent.includes('20 images')")
            page.select_option("#k", "12")

            # a filter: only the holiday folder, portrait pictures excluded by shape
            page.click("#filters summary")
            page.fill("#f-in", "holiday")
            page.select_option("#f-orientation", "landscape")
            page.fill("#q", "a red circle")
            page.press("#q", "Enter")
            want = library(db, encoder, root, 12, text="a red circle",
                           where=Filter.parse(["holiday"], orientation="landscape", root=str(root)))
            wait_for_results(page, len(want))
            assert captions(page) == want and all(c.startswith("holiday/") for c in want)
            q = parse_qs(urlparse(page.url).query)
            assert q["q"] == ["a red circle"] and q["in"] == ["holiday"] and q["orientation"] == ["landscape"]
            filtered_url = page.url

            # a "+" term: a chip, the address, and the library's results for the same query
            page.fill("#f-in", "")
            page.select_option("#f-orientation", "")
            page.fill("#term", "a blue square")
            page.click("#add-btn")
            page.wait_for_function("() => new URL(location.href).searchParams.get('add') === 'a blue square'")
            want = library(db, encoder, root, 12, text="a red circle", add=["a blue square"])
            page.wait_for_function("(want) => [...document.querySelectorAll('#grid .caption')]"
                                   ".map(c => c.textContent).join('|') === want", arg="|".join(want))
            assert page.locator("#chips .chip.plus").count() == 1
            assert "+ a blue square" in page.inner_text("#chips")

            # relevant only: a divider where the relevant results end, the rest dimmed below it
            page.check("#relevant")
            page.wait_for_function("() => new URL(location.href).searchParams.get('relevant') === '1'")
            with clipseek.Gallery(db, encoder) as g:
                res = g.search("a red circle", k=12, add=["a blue square"])
            n_rel = sum(r.relevant for r in res)
            assert 0 < n_rel < 12  # the case the divider is for
            page.wait_for_selector("#grid .divider")
            cells = page.eval_on_selector_all("#grid > *", "els => els.map(e => e.className)")
            assert cells.index("divider") == n_rel
            assert all("dimmed" in c for c in cells[n_rel + 1:]) and not any("dimmed" in c for c in cells[:n_rel])
            assert f"{n_rel} relevant" in page.inner_text("#status")
            shots = os.environ.get("CLIPSEEK_E2E_SHOTS") or str(tmp_path)
            os.makedirs(shots, exist_ok=True)
            page.screenshot(path=os.path.join(shots, "relevant.png"), full_page=True)

            # "more like this" on a result adds image:ID as a "+" term
            first_id = res[0].id
            page.locator("#grid .card .more").first.click()
            page.wait_for_function("() => new URL(location.href).searchParams.getAll('add').length === 2")
            assert parse_qs(urlparse(page.url).query)["add"] == ["a blue square", f"image:{first_id}"]
            wait_for_results(page)
            address, shown = page.url, captions(page)

            # a copied address reproduces the search in a fresh page: form, chips and results
            other = context.new_page()  # the same browser profile (the token is kept there)
            other.goto(address)
            wait_for_results(other, len(shown))
            assert captions(other) == shown and other.input_value("#q") == "a red circle"
            assert other.locator("#chips .chip").count() == 2 and other.is_checked("#relevant")
            assert other.locator("#grid .divider").count() == 1
            other.close()

            # Back: the search before, then the filtered one
            page.go_back()
            page.wait_for_function("() => new URL(location.href).searchParams.getAll('add').length === 1")
            for _ in range(6):  # further back (each filter change was a search of its own) to the filtered one
                if page.url == filtered_url:
                    break
                page.go_back()
            assert page.url == filtered_url
            want = library(db, encoder, root, 12, text="a red circle",
                           where=Filter.parse(["holiday"], orientation="landscape", root=str(root)))
            page.wait_for_function("(want) => [...document.querySelectorAll('#grid .caption')]"
                                   ".map(c => c.textContent).join('|') === want", arg="|".join(want))
            assert page.input_value("#f-in") == "holiday" and page.locator("#chips .chip").count() == 0
        finally:
            browser.close()
    assert not problems, problems
