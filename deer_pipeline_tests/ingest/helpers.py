"""Run an ingest and read its rows back, for the ingest, asset and sensor tests."""

from __future__ import annotations

from pathlib import Path

from deer_pipeline.ingest.ingest import IngestReport, IngestSettings, ingest_location
from deer_pipeline.ingest.locations import Location, location_key


def ingest(conn, root: Path, folder: str, **settings) -> IngestReport:
    """Ingest ``root/folder`` with no settle time unless given."""
    settings.setdefault("settle_s", 0.0)
    location = Location(location_key(folder), folder)
    return ingest_location(conn, root, location, IngestSettings(**settings))


def rows(conn, folder: str) -> dict[str, dict]:
    """Return the location's images rows by rel_path (every column)."""
    with conn.cursor() as cur:
        cur.execute("SELECT * FROM images WHERE location_key = %s", (location_key(folder),))
        names = [d.name for d in cur.description]
        found = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    conn.rollback()
    return {row["rel_path"]: row for row in found}
