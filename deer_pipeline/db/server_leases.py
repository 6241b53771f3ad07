"""Who uses the embedded server, so the last process out stops a server nobody asked to keep.

The embedded server outlives the process that started it (the CLI, the Dagster webserver, the
daemon and run workers share it). A command that only needed the database for a moment (a run,
an export, ``dagster definitions validate``) should not leave it running, yet must not stop it
under another process still using it. So every process that reaches the server holds a lease
(a file named by its pid under ``$DEER_HOME/pg-leases``); at exit it drops its lease and, when
no other live process holds one and nobody asked to keep the server (``deer-pipeline db start``
or ``db url``, which pin it until ``db stop``), stops the server it or another leaseholder
started. A server that was running before any lease (started by hand) is never stopped here.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable
from pathlib import Path

from deer_pipeline.config import deer_home

_held: set[Path] = set()


def _leases() -> Path:
    return deer_home() / "pg-leases"


def _pin() -> Path:
    return deer_home() / "pg-keep"


def _transient() -> Path:
    return _leases() / "started-by-a-leaseholder"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def take(started_here: bool, stop: Callable[[], object]) -> None:
    """Hold a lease on the server for this process until it exits.

    Args:
        started_here: this process has just started the server (it is then transient: stopped
            by the last leaseholder out unless pinned).
        stop: stops the server; called at exit by the last leaseholder out.
    """
    folder = _leases()
    folder.mkdir(parents=True, exist_ok=True)
    if started_here:
        _transient().touch()
    lease = folder / str(os.getpid())
    if lease in _held:
        return
    lease.touch()
    _held.add(lease)
    atexit.register(_release, lease, stop)


def keep() -> None:
    """Pin the server: it stays running after this process (``db start``, ``db url``)."""
    deer_home().mkdir(parents=True, exist_ok=True)
    _pin().touch()
    _transient().unlink(missing_ok=True)


def unpin() -> None:
    """Drop the pin and every lease record (``db stop`` stops the server itself)."""
    _pin().unlink(missing_ok=True)
    _transient().unlink(missing_ok=True)


def others() -> list[int]:
    """Return the pids of other live processes holding a lease (stale leases are removed)."""
    found = []
    folder = _leases()
    for entry in folder.iterdir() if folder.is_dir() else ():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        if _alive(int(entry.name)):
            found.append(int(entry.name))
        else:
            entry.unlink(missing_ok=True)
    return found


def _release(lease: Path, stop: Callable[[], object]) -> None:
    lease.unlink(missing_ok=True)
    _held.discard(lease)
    if _pin().exists() or not _transient().exists() or others():
        return
    _transient().unlink(missing_ok=True)
    stop()
