"""A small migration runner: numbered SQL files in ``sql/``, applied once, in order, checksummed.

Applied files are recorded in ``schema_migrations`` with their SHA-256; an applied file whose text
changed is refused (add a new file instead). A session advisory lock makes concurrent starts safe:
the second process waits, then finds nothing left to do.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg2.extensions

from deer_pipeline.config import PROJECT_ROOT
from deer_pipeline.errors import MigrationError

SQL_DIR = PROJECT_ROOT / "sql"
LOCK_KEY = 0x6465657270  # "deerp": one advisory lock for schema changes
_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the file's text."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(sql_dir: Path = SQL_DIR) -> list[Migration]:
    """Read ``NNN_name.sql`` files in order.

    Raises:
        MigrationError: two files share a number.
    """
    found: dict[str, Migration] = {}
    for path in sorted(sql_dir.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"migration file name must look like 001_name.sql: {path.name}")
        version = match.group(1)
        if version in found:
            raise MigrationError(
                f"two migrations numbered {version}: {found[version].name}, {path.name}"
            )
        found[version] = Migration(version, path.name, path.read_text())
    return [found[v] for v in sorted(found)]


def apply_migrations(conn: psycopg2.extensions.connection, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply pending migrations in order, each in its own transaction.

    Args:
        conn: a connection in autocommit mode (transactions are managed here).
        sql_dir: folder of migration files.

    Returns:
        Names of the files applied now (empty when the schema was current).

    Raises:
        MigrationError: an applied file was edited or is missing.
    """
    migrations = load_migrations(sql_dir)
    applied_now: list[str] = []
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        try:
            cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cur.execute("SELECT version, name, checksum FROM schema_migrations")
            applied = {v: (n, c) for v, n, c in cur.fetchall()}
            files = {m.version: m for m in migrations}
            for version, (name, checksum) in sorted(applied.items()):
                current = files.get(version)
                if current is None:
                    raise MigrationError(
                        f"migration {name} is applied in the database but missing from {sql_dir}"
                    )
                if current.checksum != checksum:
                    raise MigrationError(
                        f"migration {name} was edited after it was applied (checksum "
                        f"{checksum[:12]} in the database, {current.checksum[:12]} on disk); "
                        "restore it and add a new numbered migration instead"
                    )
            for migration in migrations:
                if migration.version in applied:
                    continue
                cur.execute("BEGIN")
                try:
                    cur.execute(migration.sql)
                    cur.execute(
                        "INSERT INTO schema_migrations (version, name, checksum)"
                        " VALUES (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum),
                    )
                    cur.execute("COMMIT")
                except BaseException:
                    cur.execute("ROLLBACK")
                    raise
                applied_now.append(migration.name)
        finally:
            cur.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    return applied_now
