"""The pipeline's PostgreSQL database as a Dagster resource.

With ``url`` unset the resource uses the embedded server under ``DEER_HOME`` (started on first
use); with ``url`` set (``EnvVar("DEER_DATABASE_URL")`` in the definitions) it never starts one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import dagster as dg
import psycopg2.extensions

from deer_pipeline.db.connect import DatabaseUrls, connect, ensure_ready


class DatabaseResource(dg.ConfigurableResource):
    """Connections to the data database (migrated and checked for pgvector on first use)."""

    url: str | None = None

    def urls(self) -> DatabaseUrls:
        """Return the resolved URLs, starting the embedded server if needed."""
        return ensure_ready(self.url)

    def connect(self, *, autocommit: bool = False) -> psycopg2.extensions.connection:
        """Open a new connection to the data database."""
        return connect(self.urls().data, autocommit=autocommit)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[psycopg2.extensions.cursor]:
        """Yield a cursor inside one transaction: committed on success, rolled back on error."""
        conn = self.connect()
        try:
            with conn, conn.cursor() as cur:
                yield cur
        finally:
            conn.close()
