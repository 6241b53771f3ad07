"""A running ``deer-pipeline dev`` (Dagster UI + daemon + embedded database) for UI tests."""

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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DevServer:
    """Handle on a ``deer-pipeline dev`` process group started by a test."""

    def __init__(self, home, image_root, log_path):
        self.home = home
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = {**os.environ, "DEER_HOME": str(home), "DEER_IMAGE_ROOT": str(image_root)}
        for key in ("DEER_DATABASE_URL", "DAGSTER_HOME"):
            env.pop(key, None)
        self.log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "deer_pipeline.cli", "dev", "--port", str(self.port)],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log_path.read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{self.url}/server_info", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(1)
        raise AssertionError(f"UI not up in {timeout_s}s: {self.log_path.read_text()[-3000:]}")

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def stop(self) -> list[psutil.Process]:
        """Ctrl-C the CLI; return the processes it started that are still alive afterwards."""
        tree = self.descendants()
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=90)
        self.log.close()
        time.sleep(1)
        alive = [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        postgres = [
            p
            for p in psutil.process_iter(["cmdline"])
            if p.info["cmdline"]
            and str(self.home / "pg") in " ".join(p.info["cmdline"])
            and p.status() != psutil.STATUS_ZOMBIE
        ]
        return alive + postgres


@pytest.fixture(scope="module")
def ui_image_root(tmp_path_factory):
    """A small writable synthetic image root: two camera locations of 640x360 frames."""
    from deer_workshop.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("ui_images") / "images"
    generate_dataset(root, images=16, locations=2, seed=5, width=640, height=360, workers=1)
    return root


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory, ui_image_root):
    """``deer-pipeline dev`` over ``ui_image_root``, stopped (and checked for orphans) after."""
    home = tmp_path_factory.mktemp("ui_home")
    server = DevServer(home, ui_image_root, home / "dev.log")
    try:
        server.wait_ready()
        yield server
    finally:
        if server.proc.poll() is None:
            leftovers = server.stop()
            for proc in leftovers:
                proc.kill()
