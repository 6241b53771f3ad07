"""Where the data lives: URLs for the pipeline's and Dagster's databases, and connections.

``ensure_ready()`` is the one call every entry point makes: it starts the embedded server when
``DEER_DATABASE_URL`` is unset, creates the ``deer`` and ``dagster`` databases, checks pgvector and
applies migrations. It is cheap after the first call in a process.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import psycopg2.extensions

from deer_pipeline.config import dagster_database_url_override, database_url_override
from deer_pipeline.errors import DatabaseUnavailable

DATA_DB = "deer"
DAGSTER_DB = "dagster"
CONNECT_TIMEOUT_S = 10
MIN_PGVECTOR = (0, 7, 0)
CREATE_DB_LOCK = 0x64656572DB  # halfvec arrived in pgvector 0.7


@dataclass(frozen=True)
class DatabaseUrls:
    """libpq URIs for the pipeline's data database and for Dagster's storage."""

    data: str
    dagster: str

    @property
    def data_sqlalchemy(self) -> str:
        """The data URL in SQLAlchemy form (psycopg2 driver)."""
        return sqlalchemy_url(self.data)

    @property
    def dagster_sqlalchemy(self) -> str:
        """The Dagster storage URL in SQLAlchemy form (psycopg2 driver), for dagster-postgres."""
        return sqlalchemy_url(self.dagster)


def libpq_url(url: str) -> str:
    """Strip a SQLAlchemy driver suffix (``postgresql+psycopg2://``) so libpq accepts the URL."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise DatabaseUnavailable(f"not a PostgreSQL URL: {redact(url)}")
    base = scheme.split("+", 1)[0]
    if base not in ("postgresql", "postgres"):
        raise DatabaseUnavailable(f"not a PostgreSQL URL: {redact(url)}")
    return f"postgresql://{rest}"


def sqlalchemy_url(url: str) -> str:
    """Return the URL with the ``postgresql+psycopg2://`` scheme (SQLAlchemy 2.1 defaults to v3)."""
    return "postgresql+psycopg2://" + libpq_url(url).split("://", 1)[1]


def with_database(url: str, database: str) -> str:
    """Return the URL pointing at another database on the same server."""
    parts = urlsplit(libpq_url(url))
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def redact(url: str) -> str:
    """Hide the password in a URL for messages."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return url


def connect(url: str, *, autocommit: bool = False) -> psycopg2.extensions.connection:
    """Open a psycopg2 connection, failing within CONNECT_TIMEOUT_S with a one-line error.

    Args:
        url: libpq or SQLAlchemy-style PostgreSQL URL.
        autocommit: put the connection in autocommit mode.

    Raises:
        DatabaseUnavailable: the server cannot be reached or refuses the login.
    """
    try:
        conn = psycopg2.connect(libpq_url(url), connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg2.OperationalError as exc:
        reason = (str(exc).strip().splitlines() or ["unknown error"])[0]
        raise DatabaseUnavailable(f"cannot reach PostgreSQL at {redact(url)}: {reason}") from exc
    conn.autocommit = autocommit
    return conn


def _create_database(admin_url: str, name: str) -> None:
    conn = connect(admin_url, autocommit=True)
    try:
        with conn.cursor() as cur:
            # serialize with other processes starting at the same moment
            cur.execute("SELECT pg_advisory_lock(%s)", (CREATE_DB_LOCK,))
            try:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{name}"')
            finally:
                cur.execute("SELECT pg_advisory_unlock(%s)", (CREATE_DB_LOCK,))
    finally:
        conn.close()


def check_pgvector(url: str) -> str:
    """Check the server offers pgvector >= 0.7 (halfvec) and return its version.

    Raises:
        DatabaseUnavailable: the extension ``vector`` is missing or too old.
    """
    conn = connect(url, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'")
            row = cur.fetchone()
    finally:
        conn.close()
    if row is None:
        raise DatabaseUnavailable(
            f"PostgreSQL at {redact(url)} lacks the pgvector extension 'vector' "
            "(install pgvector >= 0.7 on that server)"
        )
    version = tuple(int(p) for p in row[0].split(".")[:3] if p.isdigit())
    if version < MIN_PGVECTOR:
        raise DatabaseUnavailable(
            f"PostgreSQL at {redact(url)} has pgvector {row[0]}; halfvec needs 0.7 or newer"
        )
    return row[0]


def resolve_urls(url: str | None = None) -> DatabaseUrls:
    """Return the data and Dagster URLs, starting the embedded server when none is configured.

    With ``DEER_DATABASE_URL`` set, the data database is that URL and Dagster's storage uses
    ``DEER_DAGSTER_DATABASE_URL`` if set, else the same database (Dagster's table names do not
    collide with ours). Otherwise the embedded server gets two databases, ``deer`` and ``dagster``.
    """
    override = url or database_url_override()
    if override:
        dagster = dagster_database_url_override() or override
        return DatabaseUrls(data=libpq_url(override), dagster=libpq_url(dagster))
    from deer_pipeline.db.server import ensure_server

    admin = ensure_server()
    for name in (DATA_DB, DAGSTER_DB):
        _create_database(admin, name)
    return DatabaseUrls(
        data=with_database(admin, DATA_DB), dagster=with_database(admin, DAGSTER_DB)
    )


def ensure_ready(url: str | None = None) -> DatabaseUrls:
    """Resolve URLs, check pgvector and apply pending migrations (once per process and server).

    Args:
        url: an explicit data database URL; default ``DEER_DATABASE_URL``, else embedded.

    Raises:
        DatabaseUnavailable: unreachable server or missing pgvector.
        MigrationError: an applied migration file was edited.
    """
    from deer_pipeline.config import deer_home

    return _ensure_ready(url or database_url_override(), str(deer_home()))


@functools.cache
def _ensure_ready(url: str | None, home: str) -> DatabaseUrls:
    from deer_pipeline.db.migrations import apply_migrations

    urls = resolve_urls(url)
    check_pgvector(urls.data)
    conn = connect(urls.data, autocommit=True)
    try:
        apply_migrations(conn)
    finally:
        conn.close()
    return urls


def data_connection() -> psycopg2.extensions.connection:
    """Open a connection to the pipeline's data database (ready and migrated)."""
    return connect(ensure_ready().data)
