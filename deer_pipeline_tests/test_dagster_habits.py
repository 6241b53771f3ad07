"""What a Dagster user types first works on the embedded default, with no DEER_* variables.

Each test runs the real ``dagster`` command in a folder laid out like the repository root (its
``dagster.yaml`` and ``workspace.yaml``), with no ``DEER_*`` variables and no ``DAGSTER_HOME``:
Dagster makes its temporary instance from ``./dagster.yaml``, whose storage starts the embedded
PostgreSQL under ``./.deer`` (the default ``DEER_HOME``). The folder is not the checkout, so a
developer's own ``./.deer`` is never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psycopg2
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DAGSTER = Path(sys.executable).with_name("dagster")
LOCATION_QUERY = (
    "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
    "locationOrLoadError { __typename ... on PythonError { message } } } } } }"
)

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def user_root():
    """A folder with the repository's Dagster files, and the environment of a fresh shell."""
    root = Path(tempfile.mkdtemp(prefix="deer-user-root-"))
    root.chmod(0o755)  # as root the embedded server runs as its own user: it must reach ./.deer
    for name in ("dagster.yaml", "workspace.yaml"):
        shutil.copyfile(PROJECT_ROOT / name, root / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEER_", "DAGSTER_"))}
    env.pop("XDG_RUNTIME_DIR", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    yield root, env
    subprocess.run(
        [sys.executable, "-m", "deer_pipeline.cli", "db", "stop"],
        cwd=root,
        env=env,
        capture_output=True,
        timeout=120,
    )
    shutil.rmtree(root, ignore_errors=True)


def _dagster_tables(root: Path) -> set[str]:
    conn = psycopg2.connect(f"postgresql://postgres:@/dagster?host={root / '.deer' / 'pg'}")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            return {row[0] for row in cur.fetchall()}
    finally:
        conn.close()


def test_definitions_validate_in_the_repository_root(user_root):
    root, env = user_root
    result = subprocess.run(
        [str(DAGSTER), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=500,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "Validation successful for code location deer_pipeline" in output
    assert "DEER_DAGSTER_STORAGE_URL" not in output
    # a read-only check leaves nothing running: the server it started is stopped at its exit
    status = subprocess.run(
        [sys.executable, "-m", "deer_pipeline.cli", "db", "status"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert status.returncode == 3 and "stopped" in status.stdout, status.stdout + status.stderr
    subprocess.run(
        [sys.executable, "-m", "deer_pipeline.cli", "db", "start"],
        cwd=root,
        env=env,
        capture_output=True,
        check=True,
        timeout=120,
    )
    # the temporary instance stored into PostgreSQL on the embedded server, not into SQLite
    assert {"runs", "event_logs", "instigators"} <= _dagster_tables(root)
    assert not list(root.glob(".tmp_dagster_home_*")), "Dagster's temporary home is removed"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _restore_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _post_graphql(url: str, query: str) -> dict:
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_plain_dagster_dev_serves_the_ui(user_root):
    from deer_pipeline.commands.dev import stop_process_tree

    root, env = user_root
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = root / "dev.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(DAGSTER), "dev", "-h", "127.0.0.1", "-p", str(port)],
            cwd=root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_restore_signals,
        )
        try:
            deadline = time.monotonic() + 400
            status = None
            while status != 200:
                assert proc.poll() is None, log_path.read_text()[-4000:]
                assert time.monotonic() < deadline, log_path.read_text()[-4000:]
                try:
                    with urllib.request.urlopen(f"{url}/server_info", timeout=2) as response:
                        status = response.status
                except OSError:
                    time.sleep(1)
            entries = _post_graphql(url, LOCATION_QUERY)["data"]["workspaceOrError"]
            (entry,) = entries["locationEntries"]
            assert entry["name"] == "deer_pipeline"
            assert entry["locationOrLoadError"]["__typename"] == "RepositoryLocation", entry
            assert {"runs", "event_logs"} <= _dagster_tables(root)
        finally:
            stop_process_tree(proc, grace_s=30)
    assert "DEER_DAGSTER_STORAGE_URL" not in log_path.read_text()
