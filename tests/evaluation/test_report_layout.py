"""The eval report's mistake cards in headless Chromium: a long file name stays inside its card."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from test_web_e2e import CHROMIUM, browser_or_fail

from clipseek.evaluation.report import CSS, mistake_card

pytestmark = pytest.mark.browser


def test_long_file_names_do_not_run_into_the_next_card(tmp_path):
    long = "a_very_long_file_name_without_any_spaces_from_a_camera_export_0001234567.jpeg"
    cards = "".join(mistake_card({"path": f"/x/{long}{i}", "true": "cat", "predicted": "dog", "confidence": 0.9},
                                 None) for i in range(4))
    page = tmp_path / "r.html"
    page.write_text(f"<!doctype html><html><head><meta charset='utf-8'><style>{CSS}</style></head>"
                    f"<body><div>{cards}</div></body></html>", "utf-8")
    sync_playwright = browser_or_fail()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        tab = browser.new_page(viewport={"width": 1000, "height": 600})
        tab.goto(page.as_uri())
        boxes = tab.evaluate("""[...document.querySelectorAll('.mist')].map(c => {
            const n = c.querySelector('.name').getBoundingClientRect(), b = c.getBoundingClientRect();
            return [b.left, b.right, n.left, n.right, c.querySelector('.name').title]; })""")
        tab.screenshot(path=str(tmp_path / "cards.png"))
        browser.close()
    assert len(boxes) == 4
    for left, right, name_left, name_right, title in boxes:
        assert left - 0.5 <= name_left and name_right <= right + 0.5, boxes  # inside its own card
        assert title.startswith(long)  # the whole name in the tooltip
