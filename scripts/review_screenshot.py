"""Screenshot the review queue page (docs/review-queue.png) with headless Chromium.

Starts ``deer-pipeline review`` over the configured database (``DEER_HOME``/``DEER_DATABASE_URL``,
``DEER_IMAGE_ROOT`` for the crops), loads the queue page, waits for its crops and saves a PNG.

    python scripts/review_screenshot.py docs/review-queue.png [--at N]
"""

from __future__ import annotations

import argparse
import shutil
import signal
import socket
import subprocess
import sys
import time

import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--at", type=int, default=0, help="proposal position to show")
    args = parser.parse_args()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "deer_pipeline.cli",
            "review",
            "--port",
            str(port),
            "--reviewer",
            "ann",
        ]
    )
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                requests.get(url + "/", timeout=5)
                break
            except requests.ConnectionError:
                time.sleep(0.3)
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium")
        for flag in (
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1400,1000",
            "--disable-dev-shm-usage",
        ):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
        try:
            driver.get(f"{url}/?at={args.at}")
            WebDriverWait(driver, 120).until(
                lambda d: d.execute_script(
                    "return Array.from(document.images).every(i => i.complete)"
                )
            )
            driver.save_screenshot(args.out)
        finally:
            driver.quit()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=300)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
