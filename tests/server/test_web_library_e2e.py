"""The page as a photo library, in headless Chromium (as tests/server/test_web_e2e.py launches it):
browsing by folder and by month with Back/Forward, a search that loads more, the viewer's keys and
details, the duplicates' comparison, the 390-px phone layout, and an axe-core scan (no serious or
critical violation; skipped when axe-playwright-python is not installed). The server runs with a
token, and one folder's name is not UTF-8 and holds markup. CLIPSEEK_E2E_SHOTS=DIR keeps screenshots.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil

import pytest
from test_web_e2e import CHROMIUM, TOKEN, browser_or_fail, shape_image

import clipseek
from conftest import live_server

pytestmark = pytest.mark.browser
ODD = b"<b>caf\xe9&amp;"  # a folder name that is not UTF-8 and holds markup
N = 30


def ns(y, m, d=1):
    return int(dt.datetime(y, m, d, 12, tzinfo=dt.timezone.utc).timestamp()) * 10 ** 9


@pytest.fixture(scope="module")
def server(tmp_path_factory, encoder):
    from clipseek.server import create_app

    root = tmp_path_factory.mktemp("lib") / "photos"
    for sub in ("trips/alps", "trips/sea", "home"):
        (root / sub).mkdir(parents=True)
    odd = os.path.join(os.fsencode(str(root)), ODD)
    os.mkdir(odd)
    folders = [os.fsencode(str(root / s)) for s in ("trips/alps", "trips/sea", "home")] + [odd]
    for i in range(N):
        path = os.path.join(folders[i % 4], b"shape%02d.png" % i)
        shape_image(i).save(path)
        t = ns(2024, 1 + i % 5, 1 + i % 27)  # January to May 2024
        os.utime(path, ns=(t, t))
    copy = os.path.join(folders[2], b"copy-of-shape02.png")
    shutil.copyfile(os.path.join(folders[2], b"shape02.png"), copy)
    os.utime(copy, ns=(ns(2023, 6), ns(2023, 6)))
    db = str(root.parent / "g.db")
    with clipseek.Gallery(db, encoder) as g:
        g.index([str(root)])
    with live_server(create_app(db, encoder, token=TOKEN, allowed_hosts=["127.0.0.1", "localhost"])) as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    sync_playwright = browser_or_fail()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser, server, tmp_path):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = ctx.new_page()
    problems: list[str] = []
    pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    pg.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
    pg.goto(server + "/?token=" + TOKEN)
    pg.wait_for_function("() => document.querySelectorAll('#grid .card').length > 0")
    pg.shots = os.environ.get("CLIPSEEK_E2E_SHOTS") or str(tmp_path)
    os.makedirs(pg.shots, exist_ok=True)
    yield pg
    ctx.close()
    assert not problems, problems  # no script error, no CSP violation, no failed request


def shot(page, name, full=False):
    page.screenshot(path=os.path.join(page.shots, name), full_page=full)


def months_shown(page):
    return page.locator("#grid .month-head").all_inner_texts()


def test_start_page_browses_newest_first_by_month_and_by_folder(page):
    assert page.locator("#grid .card").count() == N + 1
    heads = months_shown(page)
    assert heads[0].startswith("May") and heads[-1].startswith("June") and "2023" in heads[-1]
    tree = page.locator("#folder-tree")
    assert "All photos" in tree.inner_text() and str(N + 1) in tree.inner_text()
    assert page.locator("#folder-tree .tree-btn", has_text="<b>caf").count() == 1  # markup as text
    shot(page, "start.png")

    page.locator("#folder-tree .tree-btn", has_text="trips").first.click()  # trips: alps and sea
    page.wait_for_function("() => document.getElementById('list-title').textContent.startsWith('trips')")
    captions = page.locator("#grid .caption").all_inner_texts()
    assert len(captions) == 16 and all(c.startswith("trips/") for c in captions)
    assert "in=trips" in page.url
    page.locator("#month-list .tree-btn", has_text="March").click()
    page.wait_for_function("() => document.getElementById('list-title').textContent.includes('March 2024')"
                           " && document.querySelectorAll('#grid .month-head').length === 1")
    assert months_shown(page) == ["March 2024"] and page.locator("#grid .card").count() == 2  # shape12, shape17
    assert "after=2024-03-01" in page.url and "in=trips" in page.url

    page.go_back()  # trips, any time
    page.wait_for_function("() => document.querySelectorAll('#grid .card').length === 16")
    page.go_back()  # the start page
    page.wait_for_function(f"() => document.querySelectorAll('#grid .card').length === {N + 1}")
    page.go_forward()
    page.wait_for_function("() => document.querySelectorAll('#grid .card').length === 16")


def test_a_search_loads_more_up_to_the_end(page):
    page.select_option("#k", "12")
    page.fill("#q", "a red circle")
    page.press("#q", "Enter")
    page.wait_for_function("() => document.querySelectorAll('#grid .card').length === 12")
    assert f"{N + 1} images searched" in page.inner_text("#status")
    assert page.locator("#more-btn").is_visible()
    shot(page, "search.png")
    page.click("#more-btn")
    page.wait_for_function("() => document.querySelectorAll('#grid .card').length === 24")
    page.mouse.wheel(0, 5000)  # scrolling to the end loads the last page
    page.wait_for_function(f"() => document.querySelectorAll('#grid .card').length === {N + 1}")
    assert page.locator("#more-btn").is_hidden()
    scores = [float(s) for s in page.locator("#grid .score").all_inner_texts()]
    assert scores == sorted(scores, reverse=True)
    assert len(set(page.locator("#grid .caption").all_inner_texts())) == N + 1  # no result twice


def test_viewer_walks_the_list_with_keys_and_shows_details(page):
    first, second = page.locator("#grid .caption").all_inner_texts()[:2]
    page.locator("#grid .card").first.click()
    page.wait_for_selector("#viewer", state="visible")
    page.wait_for_function("() => document.getElementById('viewer-img').naturalWidth === 200")
    assert page.inner_text("#viewer-name") == os.path.basename(first)
    details = page.inner_text("#viewer-details")
    for word in ("Folder", "200 × 150 px", "File size", "Taken", "May"):
        assert word in details, details
    assert page.inner_text("#viewer-pos").startswith("1 of ")
    shot(page, "viewer.png")
    page.keyboard.press("ArrowRight")
    page.wait_for_function("(n) => document.getElementById('viewer-name').textContent === n",
                           arg=os.path.basename(second))
    assert page.inner_text("#viewer-pos").startswith("2 of ")
    page.keyboard.press("ArrowLeft")
    page.wait_for_function("() => document.getElementById('viewer-pos').textContent.startsWith('1 of')")
    page.keyboard.press("Escape")
    assert page.locator("#viewer").is_hidden()
    page.locator("#grid .card").nth(3).click()
    page.keyboard.press("/")  # search from inside the viewer
    assert page.locator("#viewer").is_hidden()
    assert page.evaluate("document.activeElement.id") == "q"

    page.fill("#q", "a red circle")  # from a search: score and relevance, and "more like this"
    page.press("#q", "Enter")
    page.wait_for_function("() => /results for/.test(document.getElementById('status').textContent)")
    page.locator("#grid .card-open").first.click()
    page.wait_for_function("() => /Relevance/.test(document.getElementById('viewer-details').textContent)")
    page.wait_for_function("() => /File size/.test(document.getElementById('viewer-details').textContent)")
    assert "Score" in page.inner_text("#viewer-details")
    page.click("#viewer-more")
    page.wait_for_function("() => document.querySelectorAll('#chips .chip.plus').length === 1")
    assert "add=image" in page.url


def test_duplicates_show_facts_keeper_command_and_a_comparison(page):
    page.click("#dupes-btn")
    page.wait_for_selector("#dupes-panel .member")
    group = page.locator(".dupe-group", has_text="copy-of-shape02.png")
    members = group.locator(".member")
    assert members.count() >= 2
    keeper = group.locator(".member.keeper")
    assert keeper.count() == 1 and keeper is not None
    facts = keeper.inner_text()
    assert "keeper: " in facts and "200×150" in facts and "bytes" in facts and "2024" in facts
    copy = group.locator(".member", has_text="copy-of-shape02.png").inner_text()
    assert "identical" in copy and "June 2023" in copy.replace("Jun ", "June ") or "2023" in copy
    assert "home/copy-of-shape02.png" in group.inner_text() and "home/shape02.png" in group.inner_text()
    assert page.inner_text("#dupes-command") == "clipseek dupes --db ../g.db --move-extras-to DIR"
    group.locator("button", has_text="Compare").click()
    page.wait_for_function("() => document.querySelectorAll('#dupe-compare img').length === 2 && "
                           "[...document.querySelectorAll('#dupe-compare img')].every(i => i.naturalWidth === 200)")
    assert "KEEP (" in page.inner_text("#dupe-compare")
    shot(page, "dupes.png", full=True)
    page.locator("#dupe-compare button", has_text="Blink").click()
    visible = page.locator("#dupe-compare figure:visible")
    assert visible.count() == 1
    first = visible.inner_text()
    page.click("#dupe-compare .compare-sides")
    assert page.locator("#dupe-compare figure:visible").inner_text() != first
    members.first.locator(".member-thumb").click()  # the viewer walks the group
    page.wait_for_selector("#viewer", state="visible")
    assert page.inner_text("#viewer-pos") == f"1 of {members.count()}"


def test_phone_layout_390px(browser, server, tmp_path):
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    pg = ctx.new_page()
    shots = os.environ.get("CLIPSEEK_E2E_SHOTS") or str(tmp_path)
    try:
        pg.goto(server + "/?token=" + TOKEN)
        pg.wait_for_function("() => document.querySelectorAll('#grid .card').length > 0")
        wide = "() => document.documentElement.scrollWidth"
        assert pg.evaluate(wide) <= 390
        box = pg.locator("#grid .card").first.bounding_box()
        assert 100 <= box["width"] <= 200  # three columns
        pg.screenshot(path=os.path.join(shots, "start-390.png"))
        pg.fill("#q", "a red circle")
        pg.press("#q", "Enter")
        pg.wait_for_function("() => /results for/.test(document.getElementById('status').textContent)")
        assert pg.evaluate(wide) <= 390
        pg.screenshot(path=os.path.join(shots, "search-390.png"))
        pg.locator("#grid .card-open").first.click()
        pg.wait_for_selector("#viewer", state="visible")
        pg.wait_for_function("() => document.getElementById('viewer-img').naturalWidth > 0")
        img = pg.locator("#viewer-img").bounding_box()
        assert img["width"] <= 390 and pg.locator("#viewer-next").is_visible()
        pg.screenshot(path=os.path.join(shots, "viewer-390.png"))
        name = pg.inner_text("#viewer-name")
        touch = {"identifier": 1, "clientY": 200}
        pg.dispatch_event("#viewer-stage", "touchstart", {"touches": [{**touch, "clientX": 300}]})
        pg.dispatch_event("#viewer-stage", "touchend", {"changedTouches": [{**touch, "clientX": 100}]})
        pg.wait_for_function("(n) => document.getElementById('viewer-name').textContent !== n", arg=name)
        assert pg.inner_text("#viewer-pos").startswith("2 of")  # a swipe to the left: the next one
        pg.keyboard.press("Escape")
        pg.click("#dupes-btn")
        pg.wait_for_selector("#dupes-panel .member")
        assert pg.evaluate(wide) <= 390
        pg.screenshot(path=os.path.join(shots, "dupes-390.png"), full_page=True)
    finally:
        ctx.close()


def axe_violations(page) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    page.evaluate(Axe().axe_script)  # evaluated by the driver: the page's CSP does not apply
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
            for v in result["violations"] if v["impact"] in ("serious", "critical")]


def test_axe_finds_no_serious_violation(page):
    pytest.importorskip("axe_playwright_python", reason="axe-core comes with axe-playwright-python "
                        "(the test extra): pip install axe-playwright-python")
    found = {"start": axe_violations(page)}
    page.fill("#q", "a red circle")
    page.press("#q", "Enter")
    page.wait_for_function("() => /results for/.test(document.getElementById('status').textContent)")
    found["search"] = axe_violations(page)
    page.locator("#grid .card-open").first.click()
    page.wait_for_selector("#viewer", state="visible")
    found["viewer"] = axe_violations(page)
    page.keyboard.press("Escape")
    page.click("#dupes-btn")
    page.wait_for_selector("#dupes-panel .member")
    page.locator(".dupe-group button", has_text="Compare").first.click()
    found["dupes"] = axe_violations(page)
    assert not any(found.values()), found
