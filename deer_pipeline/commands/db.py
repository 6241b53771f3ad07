"""``deer-pipeline db start|stop|status|url``: manage the embedded PostgreSQL server."""

from __future__ import annotations

import argparse

from deer_pipeline.config import database_url_override


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``db`` command group."""
    parser = subparsers.add_parser("db", help="manage the embedded PostgreSQL server")
    actions = parser.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    for name, func, text in (
        ("start", _start, "start the embedded server and apply migrations"),
        ("stop", _stop, "stop the embedded server"),
        ("status", _status, "say whether the server is running"),
        ("url", _url, "print the data database URL (postgresql+psycopg2://)"),
    ):
        actions.add_parser(name, help=text).set_defaults(func=func)


def _external_notice() -> bool:
    if database_url_override():
        print("DEER_DATABASE_URL is set: using that server; the embedded server is not managed")
        return True
    return False


def _start(args: argparse.Namespace) -> int:
    from deer_pipeline.db.connect import ensure_ready, redact

    external = _external_notice()
    urls = ensure_ready()
    if not external:
        from deer_pipeline.db.server import keep_running

        keep_running()
        print(f"embedded PostgreSQL running; data database {redact(urls.data_sqlalchemy)}")
    return 0


def _stop(args: argparse.Namespace) -> int:
    from deer_pipeline.db.server import pg_data_dir, stop_server

    if _external_notice():
        return 0
    stopped = stop_server()
    print(f"embedded PostgreSQL {'stopped' if stopped else 'was not running'} ({pg_data_dir()})")
    return 0


def _status(args: argparse.Namespace) -> int:
    from deer_pipeline.db.server import pg_data_dir, server_running

    if _external_notice():
        from deer_pipeline.db.connect import check_pgvector, redact

        url = database_url_override()
        print(f"external server {redact(url)} reachable, pgvector {check_pgvector(url)}")
        return 0
    running = server_running()
    print(f"embedded PostgreSQL {'running' if running else 'stopped'} ({pg_data_dir()})")
    return 0 if running else 3


def _url(args: argparse.Namespace) -> int:
    from deer_pipeline.db.connect import ensure_ready

    url = ensure_ready().data_sqlalchemy
    if not database_url_override():
        from deer_pipeline.db.server import keep_running

        keep_running()  # the URL is for someone else to use: the server stays up
    print(url)
    return 0
