"""The review app as a person uses it: a real ``deer-pipeline review`` and headless Chromium.

The first ranking is built in the background (the page says so, then shows the best proposal
with its likelihood in words). Keys only: M merges the first proposal, N answers "not the same"
(remembered: never proposed again), U undoes it (the pair comes back), a reload shows the same
state; Ctrl-C stops the server with no process left behind. Screenshots go to the
``artifacts`` folder.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import psutil
import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.support.ui import WebDriverWait

from deer_pipeline.review_app.learning import WORDS
from deer_pipeline.review_app.queue import ProposalQueue
from deer_pipeline_tests.chromium import headless_chromium


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def browser():
    driver = headless_chromium(1400, 1000)
    yield driver
    driver.quit()


@pytest.fixture
def review_server(herd, deer_home, tmp_path):
    port = _free_port()
    env = {**os.environ, "DEER_HOME": str(deer_home), "DEER_IMAGE_ROOT": str(herd["root"])}
    log = open(tmp_path / "review.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "deer_pipeline.cli",
            "review",
            "--port",
            str(port),
            "--reviewer",
            "tester",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, (tmp_path / "review.log").read_text()
        try:
            with urllib.request.urlopen(url + "/", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            assert time.monotonic() < deadline, "review app not up"
            time.sleep(0.3)
    try:
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        log.close()


def _key(browser, key: str) -> None:
    ActionChains(browser).send_keys(key).perform()


def _wait_message(browser, text: str) -> str:
    WebDriverWait(browser, 30).until(
        lambda d: (
            text in (d.find_elements("id", "message") or [None])[0].text
            if d.find_elements("id", "message")
            else False
        )
    )
    return browser.find_element("id", "message").text


def _current(browser) -> str | None:
    found = browser.find_elements("id", "proposal")
    return found[0].get_attribute("data-key") if found else None


def test_keyboard_review(review_server, browser, herd, artifacts):
    proc, url = review_server
    browser.get(url + "/")
    WebDriverWait(browser, 60).until(lambda d: _current(d) is not None)  # ranking built
    first = _current(browser)
    assert first and first.startswith("pair:")
    words = browser.find_element("id", "likelihood").text
    assert words in {w for _, w in WORDS}
    assert browser.find_elements("id", "stop") == []  # no "you may stop" before any answer
    assert browser.save_screenshot(str(artifacts / "review-queue.png"))
    _key(browser, "m")
    assert "Merged deer" in _wait_message(browser, "Merged")
    second = _current(browser)
    assert second != first
    _key(browser, "n")
    _wait_message(browser, "not the same: remembered")
    assert _current(browser) != second
    with herd["conn"].cursor() as cur:
        remembered = {p.key for p in ProposalQueue().proposals(cur)}
        cur.execute("SELECT reviewer, action FROM review_log ORDER BY id")
        assert cur.fetchall() == [("tester", "merge"), ("tester", "not_same")]
    herd["conn"].rollback()
    assert second not in remembered
    assert browser.save_screenshot(str(artifacts / "review-after-not-same.png"))
    _key(browser, "u")
    _wait_message(browser, "Undid the not_same")
    assert _current(browser) == second
    browser.refresh()
    WebDriverWait(browser, 30).until(lambda d: _current(d) == second)
    left = browser.find_element("css selector", "#side-left h2 a")
    left.click()  # the mouse works too: the deer page, all sightings on a timeline
    WebDriverWait(browser, 30).until(lambda d: "/deer/" in d.current_url)
    assert len(browser.find_elements("css selector", "input[name=detections]")) >= 3
    assert browser.save_screenshot(str(artifacts / "review-deer.png"))

    children = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=180) == 0  # the machine may be busy: Dagster imports slowly
    time.sleep(0.5)
    assert [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []

    # the Dagster UI shows when identities were last reviewed
    from dagster import AssetKey

    from deer_pipeline.instance import get_instance

    records = get_instance().fetch_observations(AssetKey("deer_identities"), limit=1).records
    metadata = records[0].asset_observation.metadata
    assert metadata["last_reviewer"].value == "tester"
    assert (metadata["review_decisions"].value, metadata["review_undone"].value) == (2, 1)
