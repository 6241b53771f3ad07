"""One line, not a 200-line traceback, when the database goes away during ``deer-pipeline run``.

``run`` executes each location's job in its own process against Dagster's PostgreSQL storage.
When the server stops mid-run, the step fails, dagster-postgres retries every event write with a
warning and a traceback, and the run's console logger prints each failure: about 200 lines. This
module holds the run's console output (file descriptor 2, so Python logging, Dagster's console
logger and C libraries alike) in a log file under ``$DEER_HOME/logs`` while the run executes:

- the run ends and the database answers: the held output is replayed to stderr as it was;
- the database does not answer: ``DatabaseStopped``, one line naming what happened, where the
  details are, and what to do (the CLI prints it and exits 2).

Nothing is lost: every batch the run committed stays (a re-run replaces rows on natural keys and
finishes the rest); the run left STARTED in Dagster's storage is released by the next ``run``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from deer_pipeline.errors import DatabaseUnavailable, DeerError


class DatabaseStopped(DeerError):
    """The database stopped answering while a run was working."""


def database_answers(url: str) -> bool:
    """Whether the data database accepts a connection and a query right now."""
    from deer_pipeline.db.connect import connect

    try:
        conn = connect(url, autocommit=True)
    except DatabaseUnavailable:
        return False
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
        return True
    except Exception:  # noqa: BLE001 - any failure of the probe means "does not answer"
        return False
    finally:
        with contextlib.suppress(Exception):
            conn.close()


@contextlib.contextmanager
def held_stderr(log_path: Path) -> Iterator[Path]:
    """Send file descriptor 2 to ``log_path`` for the duration; restore it afterwards."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    with open(log_path, "wb") as log:
        os.dup2(log.fileno(), 2)
        try:
            yield log_path
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def replay(log_path: Path) -> None:
    """Write held output to stderr as it would have appeared."""
    data = log_path.read_bytes() if log_path.exists() else b""
    if data:
        sys.stderr.flush()
        os.write(2, data)


def stopped_message(location: str, log_path: Path, embedded: bool) -> str:
    """The one line for a run whose database stopped."""
    start = "deer-pipeline db start, " if embedded else "bring the server back, "
    return (
        f"the database stopped while location {location} was running; what was written is kept "
        f"(details: {log_path}). {start}then run the same command again to finish it"
    )


def log_file(home: Path, location: str) -> Path:
    """Where a location's held run output goes: ``$DEER_HOME/logs/run-<time>-<location>.log``."""
    return home / "logs" / f"run-{time.strftime('%Y%m%d-%H%M%S')}-{location}.log"


def run_guarded(execute, location: str, home: Path, url: str, embedded: bool):
    """Run ``execute()`` with its console output held; one-line error if the database went away.

    Args:
        execute: runs one location's job and returns its result.
        location: the location's key, for the message.
        home: ``DEER_HOME`` (the held output goes to its ``logs`` folder).
        url: the data database's URL, to probe.
        embedded: whether the server is the embedded one (what to do differs).

    Returns:
        ``execute()``'s result, its output replayed, when the database still answers.

    Raises:
        DatabaseStopped: the database does not answer after the run ended or failed.
    """
    log_path = log_file(home, location)
    try:
        with held_stderr(log_path):
            result = execute()
    except Exception as exc:
        if not database_answers(url):
            raise DatabaseStopped(stopped_message(location, log_path, embedded)) from exc
        replay(log_path)
        raise
    if not getattr(result, "success", True) and not database_answers(url):
        raise DatabaseStopped(stopped_message(location, log_path, embedded))
    replay(log_path)
    return result
