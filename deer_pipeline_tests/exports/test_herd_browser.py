"""The herd survey page as a person opens it: from disk, offline, in headless Chromium.

Every picture must load (``naturalWidth`` > 0) and nothing may come from the network; the
screenshot is kept under the test's folder and in the ``artifacts`` folder.
"""

from __future__ import annotations

import shutil

import pytest
from selenium.webdriver.support.ui import WebDriverWait

from deer_pipeline.cli import main
from deer_pipeline.db.connect import connect
from deer_pipeline_tests.chromium import headless_chromium
from deer_pipeline_tests.exports.herd_world import EAST, build_herd

SECTIONS = ("unique", "estimate", "ratios", "sightings", "activity", "rai", "timeline")


@pytest.fixture
def browser():
    driver = headless_chromium(1200, 900)
    yield driver
    driver.quit()


def test_report_opens_offline_with_every_picture(
    clean_db, tmp_path, browser, artifacts, capsys, monkeypatch
):
    conn = connect(clean_db.data)
    world = build_herd(conn, tmp_path / "world")
    conn.close()
    monkeypatch.setenv("DEER_IMAGE_ROOT", str(tmp_path / "world"))
    assert main(["review", "simulate", "--truth", str(world["truth"])]) == 0
    out = tmp_path / "report"
    assert main(["report", "herd", str(out)]) == 0
    capsys.readouterr()
    browser.get((out / "index.html").as_uri())
    WebDriverWait(browser, 30).until(
        lambda d: d.execute_script(
            "return document.readyState === 'complete' &&"
            " Array.from(document.images).every(i => i.complete)"
        )
    )
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.getAttribute('src'), i.naturalWidth])"
    )
    assert len(images) == len(SECTIONS)
    assert all(width > 0 for _, width in images), images
    assert all(not src.startswith(("http:", "https:", "//")) for src, _ in images)
    remote = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
        ".filter(n => !n.startsWith('file:'))"
    )
    assert remote == []
    for section in SECTIONS:
        assert browser.find_element("id", section).is_displayed()
    assert EAST in browser.find_element("id", "location-table").text
    height = browser.execute_script("return document.body.scrollHeight")
    browser.set_window_size(1200, min(height + 40, 8000))
    shot = tmp_path / "herd-survey.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 50_000
    shutil.copy(shot, artifacts / "herd-survey.png")
