"""The ``images`` and ``locations`` rows of one location: read them, lock them, write the changes.

Writes go through one path: binary COPY of the changed rows into a temporary staging table, then
``INSERT ... ON CONFLICT (rel_path) DO UPDATE``, inside the caller's transaction. Ids of new rows
are drawn from the identity sequence beforehand, so duplicates and bursts can point at rows that
are inserted by the same statement. A transaction-level advisory lock per location serializes two
ingests of the same location (a sensor run and a CLI run, say); other locations are not blocked.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from deer_pipeline.db.columns import COPY_TYPES
from deer_pipeline.db.copy import copy_rows
from deer_pipeline.ingest.locations import Location


def _column(name: str | None = None) -> dataclasses.Field:
    """A field of :class:`ImageRow` stored in column ``name`` (default its own name)."""
    return dataclasses.field(metadata={"column": name})


@dataclass(frozen=True)
class ImageRow:
    """One ``images`` row as ingest manages it (COPY types: ``db/columns.py``)."""

    id: int = _column()
    location_key: str = _column()
    rel_path: str = _column()
    sha256: str | None = _column()
    size: int | None = _column("bytes")
    mtime_ns: int | None = _column()
    width: int | None = _column()
    height: int | None = _column()
    captured_at: datetime | None = _column()
    captured_at_source: str | None = _column()
    captured_at_exact: bool = _column()
    camera_make: str | None = _column()
    camera_model: str | None = _column()
    camera_serial: str | None = _column()
    orientation: int = _column()
    burst_id: int | None = _column()
    status: str = _column()
    error: str | None = _column()
    duplicate_of: int | None = _column()
    format: str | None = _column()
    color_mode: str | None = _column()
    note: str | None = _column()


# (field, column, COPY type) in ImageRow order.
COLUMNS = [
    (f.name, column, COPY_TYPES["images"][column])
    for f in dataclasses.fields(ImageRow)
    for column in [f.metadata["column"] or f.name]
]
_SELECT = ", ".join(column for _, column, _ in COLUMNS)
_UPDATE = ", ".join(
    f"{column} = EXCLUDED.{column}" for _, column, _ in COLUMNS if column not in ("id", "rel_path")
)


def lock_location(cursor, key: str) -> None:
    """Take the location's advisory lock until the transaction ends."""
    cursor.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('deer_pipeline.ingest:' || %s, 0))", (key,)
    )


def upsert_location(cursor, location: Location) -> None:
    """Insert the ``locations`` row (key and the folder's original name) if it is new."""
    cursor.execute(
        "INSERT INTO locations (key, folder) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING",
        (location.key, location.folder),
    )


def folder_for_key(cursor, key: str) -> str | None:
    """Return the folder name recorded for a location key, or None."""
    cursor.execute("SELECT folder FROM locations WHERE key = %s", (key,))
    row = cursor.fetchone()
    return row[0] if row else None


def location_names(cursor, keys=None) -> dict[str, str]:
    """Return each location's name as the person named its folder ("East Gate"), by key.

    The one reader of a location's display name: pages, reports and exports show it; URLs and
    data keep the partition key. ``rel_path`` of every image starts with the same folder name.

    Args:
        cursor: a cursor on the data database.
        keys: the location keys wanted (None: every location).

    Returns:
        ``{key: folder}`` for the locations that exist.
    """
    if keys is None:
        cursor.execute("SELECT key, folder FROM locations")
    else:
        cursor.execute("SELECT key, folder FROM locations WHERE key = ANY(%s)", (list(keys),))
    return dict(cursor.fetchall())


def fetch_rows(cursor, key: str) -> dict[str, ImageRow]:
    """Return the location's rows by ``rel_path``."""
    cursor.execute(f"SELECT {_SELECT} FROM images WHERE location_key = %s", (key,))
    return {row.rel_path: row for row in (ImageRow(*values) for values in cursor.fetchall())}


def allocate_ids(cursor, count: int) -> list[int]:
    """Draw ``count`` ids from the ``images`` identity sequence, ascending."""
    if count == 0:
        return []
    cursor.execute(
        "SELECT nextval(pg_get_serial_sequence('images', 'id')) FROM generate_series(1, %s)",
        (count,),
    )
    return sorted(value for (value,) in cursor.fetchall())


def write_rows(cursor, rows: list[ImageRow]) -> int:
    """Upsert rows (by ``rel_path``) through a binary-COPY staging table; returns the count.

    Call once per transaction: the staging table empties itself at commit.
    """
    if not rows:
        return 0
    cursor.execute(
        "CREATE TEMP TABLE IF NOT EXISTS ingest_stage "
        "(LIKE images INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    )
    data = {column: [getattr(row, name) for row in rows] for name, column, _ in COLUMNS}
    copy_rows(cursor, "ingest_stage", [(column, t) for _, column, t in COLUMNS], data)
    cursor.execute(
        f"INSERT INTO images ({_SELECT}) SELECT {_SELECT} FROM ingest_stage ORDER BY id "
        f"ON CONFLICT (rel_path) DO UPDATE SET {_UPDATE}, ingested_at = now()"
    )
    return len(rows)


def status_counts(cursor, key: str) -> Counter:
    """Return the number of the location's rows per status."""
    cursor.execute(
        "SELECT status, count(*) FROM images WHERE location_key = %s GROUP BY status", (key,)
    )
    return Counter(dict(cursor.fetchall()))


def copies_elsewhere(cursor, key: str) -> int:
    """Count the location's ok images whose exact content is also ok in another location."""
    cursor.execute(
        "SELECT count(DISTINCT i.sha256) FROM images i JOIN images o ON o.sha256 = i.sha256 "
        "AND o.location_key <> i.location_key AND o.status = 'ok' "
        "WHERE i.location_key = %s AND i.status = 'ok'",
        (key,),
    )
    return cursor.fetchone()[0]


def failures(cursor, key: str, limit: int = 50) -> list[tuple[str, str]]:
    """Return up to ``limit`` of the location's failed files as ``(rel_path, error)``."""
    cursor.execute(
        "SELECT rel_path, error FROM images WHERE location_key = %s AND status = 'failed' "
        "ORDER BY rel_path LIMIT %s",
        (key, limit),
    )
    return cursor.fetchall()


def burst_count(cursor, key: str) -> int:
    """Count the location's bursts of two frames or more."""
    cursor.execute(
        "SELECT count(*) FROM (SELECT 1 FROM images WHERE location_key = %s "
        "AND burst_id IS NOT NULL GROUP BY burst_id HAVING count(*) > 1) AS multi",
        (key,),
    )
    return cursor.fetchone()[0]
