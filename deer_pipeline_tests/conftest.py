"""Shared fixtures: an isolated DEER_HOME with a real embedded PostgreSQL for the whole session.

Every test run gets its own temporary DEER_HOME (so a developer's ``./.deer`` is never touched);
the embedded server starts once per session and stops at the end. Tests that need a clean
pipeline schema use ``clean_db``, which empties the data tables (not the migrations).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

SHARED_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data"
"""Sample data beside the checkout (``../shared/data``); a fresh clone has none."""
SHARED_DATA = SHARED_ROOT / "camera-traps"

_DATA_TABLES = (
    "deer_not_same, review_log, sightings, deer, embeddings, detection_corrections, detections, "
    "images, locations, benchmark_runs, model_calibrations"
)


@pytest.fixture(scope="session")
def deer_home(tmp_path_factory: pytest.TempPathFactory):
    """An isolated DEER_HOME with the embedded server running and migrated."""
    # Not under tmp_path: pytest makes /tmp/pytest-of-<user> mode 0700, and as root the embedded
    # server runs as its own system user, which must reach $DEER_HOME/pg. Its lock files (only
    # the test process touches them) go under tmp_path, so nothing is left behind in /tmp.
    home = Path(tempfile.mkdtemp(prefix="deer-home-"))
    home.chmod(0o755)
    names = ("DEER_HOME", "DEER_DATABASE_URL", "DAGSTER_HOME", "XDG_RUNTIME_DIR")
    saved = {k: os.environ.get(k) for k in names}
    os.environ["XDG_RUNTIME_DIR"] = str(tmp_path_factory.mktemp("xdg-runtime"))
    os.environ["DEER_HOME"] = str(home)
    os.environ.pop("DEER_DATABASE_URL", None)
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    from deer_pipeline.db.connect import ensure_ready
    from deer_pipeline.db.server import stop_server

    ensure_ready()
    yield home
    stop_server()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def db_urls(deer_home):
    """The embedded server's URLs (data and Dagster databases)."""
    from deer_pipeline.db.connect import ensure_ready

    return ensure_ready()


@pytest.fixture
def db_conn(db_urls):
    """A connection to the data database, closed after the test."""
    from deer_pipeline.db.connect import connect

    conn = connect(db_urls.data)
    yield conn
    conn.close()


@pytest.fixture
def clean_db(db_urls):
    """Empty the pipeline's data tables before the test; yields the URLs."""
    from deer_pipeline.db.connect import connect
    from deer_pipeline.db.indexes import forget_model_version, model_dimensions

    conn = connect(db_urls.data, autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"TRUNCATE {_DATA_TABLES} RESTART IDENTITY CASCADE")
        for version in model_dimensions(cur):  # and each embedding model's HNSW indexes
            forget_model_version(cur, version)
    conn.close()
    return db_urls


def require_shared(path: Path) -> Path:
    """Return ``path`` under ``../shared/data``, or stop the test when it is absent.

    A clone of its own has no ``../shared``: its tests skip with a message naming the folder. In
    CI (``CI`` set) the data must be there, so an absent folder fails the test.

    Args:
        path: a file or folder under :data:`SHARED_ROOT`.
    """
    if path.exists():
        return path
    if os.environ.get("CI"):
        pytest.fail(f"sample data missing at {path} (CI is set: ../shared/data must be present)")
    pytest.skip(f"sample data absent: {path} (../shared/data beside the checkout; CI fails here)")


@pytest.fixture(scope="session")
def camera_traps() -> Path:
    """The real sample camera-trap photos (read-only, never copied into the project)."""
    return require_shared(SHARED_DATA)


_ARTIFACTS: list[str] = []


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """A folder for files a person should look at (screenshots, plots); listed after the run."""
    folder = Path(os.environ.get("DEER_TEST_ARTIFACTS", Path.cwd() / "test-artifacts")).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    _ARTIFACTS.append(str(folder))
    return folder


def pytest_terminal_summary(terminalreporter):
    """Say where the artifacts went, so the test log names the screenshot's folder."""
    for folder in _ARTIFACTS:
        for path in sorted(Path(folder).glob("*")):
            terminalreporter.write_line(f"artifact: {path}")
