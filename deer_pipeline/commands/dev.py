"""``deer-pipeline dev``: embedded database plus ``dagster dev`` (webserver and daemon).

``dagster dev`` started in the background ignores SIGINT, and it spawns a webserver, a daemon and
code servers. So the child runs in its own process group with default signal handling restored,
and on Ctrl-C or SIGTERM this command signals the whole group, waits, kills what is left (every
descendant, found with psutil), then stops the embedded server: no orphans remain.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request

import psutil

STOP_GRACE_S = 20


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``dev`` command."""
    parser = subparsers.add_parser("dev", help="run the Dagster UI and daemon on 127.0.0.1")
    parser.add_argument("--port", type=int, default=3000, help="webserver port (default 3000)")
    parser.add_argument(
        "--keep-db", action="store_true", help="leave the embedded server running on exit"
    )
    parser.set_defaults(func=dev_command)


def _restore_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _wait_ready(url: str, proc: subprocess.Popen, timeout_s: float = 120) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.5)
    return False


def stop_process_tree(proc: subprocess.Popen, grace_s: float = STOP_GRACE_S) -> None:
    """Stop a child started in its own process group, and every descendant, for sure.

    Args:
        proc: the child (its pid is also its process group id).
        grace_s: seconds to wait after SIGTERM before SIGKILL.
    """
    try:
        descendants = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        pass
    _, alive = psutil.wait_procs(descendants, timeout=max(1.0, grace_s / 4))
    for leftover in alive + ([psutil.Process(proc.pid)] if proc.poll() is None else []):
        try:
            leftover.kill()
        except psutil.NoSuchProcess:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _initialize_pools() -> None:
    """Create the instance's pool limits before the daemon can start runs that race for them."""
    import dagster as dg

    from deer_pipeline.compat.dagster import initialize_pools
    from deer_pipeline.pools import POOLS

    with dg.DagsterInstance.get() as instance:
        initialize_pools(instance, POOLS)


def dev_command(args: argparse.Namespace) -> int:
    """Start the database and ``dagster dev``; stop everything on Ctrl-C or SIGTERM."""
    from deer_pipeline.config import database_url_override
    from deer_pipeline.instance import WORKSPACE_YAML, prepare_environment

    prepare_environment()
    _initialize_pools()
    dagster = os.path.join(os.path.dirname(sys.executable), "dagster")
    cmd = [dagster, "dev", "-h", "127.0.0.1", "-p", str(args.port), "-w", str(WORKSPACE_YAML)]
    proc = subprocess.Popen(cmd, start_new_session=True, preexec_fn=_restore_signals)
    stopping = {"signal": None}

    def _on_signal(signum, _frame):
        stopping["signal"] = signum

    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    url = f"http://127.0.0.1:{args.port}"
    try:
        if _wait_ready(url, proc):
            print(f"Dagster UI: {url}", flush=True)
        while proc.poll() is None and stopping["signal"] is None:
            time.sleep(0.2)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        stop_process_tree(proc)
        if not database_url_override() and not args.keep_db:
            from deer_pipeline.db.server import stop_server

            stop_server()
        print("stopped the Dagster UI, daemon and database", flush=True)
    return 0 if stopping["signal"] is not None else (proc.returncode or 0)
