"""Ingest one camera location incrementally: the library behind the ``raw_images`` asset.

1. Walk the folder (``scan``) and load the location's stored rows.
2. A file whose size and mtime match its row is unchanged and not read again (unless its row
   says it was missing or unreadable: permissions and I/O errors are retried). A new or changed
   file that changed during the last ``settle_s`` seconds (by ctime, which every write moves) is
   left for the next run, as is one whose size or mtime moves while it is read.
3. Read, hash and describe the rest in a thread pool (``inspect``).
4. In one transaction, under the location's advisory lock: re-load the rows, plan the new state
   (``plan``: missing files, duplicates, bursts) and write only the rows that differ
   (``store``: binary COPY into a staging table, then ``INSERT ... ON CONFLICT (rel_path)``).

Re-running on an unchanged folder reads no file and writes no row.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from deer_pipeline.ingest import store
from deer_pipeline.ingest.bursts import DEFAULT_GAP_S
from deer_pipeline.ingest.fingerprint import listing_digest
from deer_pipeline.ingest.inspect import READ_ERROR, Inspection, inspect_file
from deer_pipeline.ingest.locations import Location
from deer_pipeline.ingest.plan import BROKEN_LINK, plan_location
from deer_pipeline.ingest.scan import FileEntry, scan_location


@dataclass(frozen=True)
class IngestSettings:
    """Knobs of an ingest run.

    Attributes:
        settle_s: a new or changed file must be untouched this long before it is read.
        burst_gap_s: largest gap between consecutive frames of one burst.
        max_pixels: refuse images declaring more pixels (decompression bombs).
        max_bytes: refuse larger files unread.
        workers: threads reading, hashing and parsing files.
    """

    settle_s: float = 2.0
    burst_gap_s: float = DEFAULT_GAP_S
    max_pixels: int = 100_000_000
    max_bytes: int = 512 * 2**20
    workers: int = 2


@dataclass
class IngestReport:
    """What an ingest run found and did (the asset's metadata)."""

    location: Location
    folder_found: bool
    status_counts: dict[str, int] = field(default_factory=dict)
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    missing: int = 0
    pending: int = 0
    read: int = 0
    bytes_read: int = 0
    rows_written: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    copies_elsewhere: int = 0
    bursts: int = 0
    listing_digest: str = ""  # empty when some files were left for the next run
    seconds: float = 0.0
    read_seconds: float = 0.0

    @property
    def images_per_s(self) -> float:
        """Files read and ingested per second of the whole run (0 when none was read)."""
        return self.read / self.seconds if self.read and self.seconds > 0 else 0.0


def _classify(scan, stored, settle_ns: int, now_ns: int):
    to_read: list[FileEntry] = []
    unchanged = pending = 0
    for entry in scan.files:
        old = stored.get(entry.rel_path)
        same = old is not None and (old.size, old.mtime_ns) == (entry.size, entry.mtime_ns)
        retry = same and (old.status == "missing" or (old.error or "").startswith(READ_ERROR))
        if same and not retry:
            unchanged += 1
        elif now_ns - entry.ctime_ns < settle_ns:
            pending += 1
        else:
            to_read.append(entry)
    return to_read, unchanged, pending


def _read_all(entries: list[FileEntry], settings: IngestSettings) -> list[Inspection]:
    inspect = partial(inspect_file, max_pixels=settings.max_pixels, max_bytes=settings.max_bytes)
    if settings.workers <= 1 or len(entries) <= 1:
        return [inspect(entry) for entry in entries]
    with ThreadPoolExecutor(settings.workers, thread_name_prefix="ingest") as pool:
        return list(pool.map(inspect, entries))


def ingest_location(
    conn, root: Path, location: Location, settings: IngestSettings | None = None
) -> IngestReport:
    """Bring the location's ``images`` rows in line with its folder (see the module docstring).

    Args:
        conn: a psycopg2 connection to the data database (not in autocommit mode); the write
            is committed here.
        root: the image root.
        location: the location (key and folder name).
        settings: run knobs; defaults if None.

    Returns:
        The report of the run.
    """
    settings = settings or IngestSettings()
    started = time.perf_counter()
    scan = scan_location(root, location.folder)
    report = IngestReport(location, folder_found=scan.found, skipped=dict(scan.skipped))
    report.notes = scan.notes
    with conn.cursor() as cur:
        stored = store.fetch_rows(cur, location.key)
    conn.rollback()  # end the read-only transaction before the long read phase
    to_read, report.unchanged, report.pending = _classify(
        scan, stored, int(settings.settle_s * 1e9), time.time_ns()
    )
    read_started = time.perf_counter()
    found = _read_all(to_read, settings)
    report.read_seconds = time.perf_counter() - read_started
    present = {entry.rel_path for entry in scan.files} | set(scan.broken_links)
    present -= {item.rel_path for item in found if item.outcome == "vanished"}
    report.pending += sum(item.outcome == "pending" for item in found)
    report.read = sum(item.sha256 is not None for item in found)
    report.bytes_read = sum(item.size for item in found if item.sha256 is not None)
    for path in scan.broken_links:
        old = stored.get(path)
        if old is not None and (old.status, old.error) == ("failed", BROKEN_LINK):
            report.unchanged += 1
        else:
            found.append(Inspection(path, "failed", error=BROKEN_LINK))
    _write(conn, location, present, found, settings, report)
    if report.pending == 0:  # the listing is fully ingested: the sensor may trust this digest
        report.listing_digest = listing_digest(scan)
    report.seconds = time.perf_counter() - started
    return report


def _write(conn, location, present, found, settings, report: IngestReport) -> None:
    key = location.key
    with conn, conn.cursor() as cur:
        store.lock_location(cur, key)
        store.upsert_location(cur, location)
        stored = store.fetch_rows(cur, key)
        new = sum(
            item.rel_path not in stored for item in found if item.outcome in ("image", "failed")
        )
        ids = iter(store.allocate_ids(cur, new))
        plan = plan_location(key, stored, present, found, ids, settings.burst_gap_s)
        report.rows_written = store.write_rows(cur, plan.rows)
        report.new, report.changed, report.missing = plan.new, plan.changed, plan.missing
        report.status_counts = dict(store.status_counts(cur, key))
        report.failures = store.failures(cur, key)
        report.copies_elsewhere = store.copies_elsewhere(cur, key)
        report.bursts = store.burst_count(cur, key)
