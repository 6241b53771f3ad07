"""A cheap fingerprint of a location's files, to notice new, changed and deleted files.

The sensor walks every location each tick, so this must stay cheap at tens of thousands of files:
one ``stat`` per file and folder (the same walk as ingest, so both agree on what counts), no
reads. The digest covers each image file's path, size and mtime (a deletion, an addition or an
overwrite changes it); ``newest_ctime_ns`` covers files *and* folders, so it moves forward on every
change, deletions included. A location is "settled" when nothing changed for ``settle_s``: a copy
in progress keeps touching its file, so the sensor waits.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

from deer_pipeline.ingest.scan import ScanResult, scan_location


@dataclass(frozen=True)
class Fingerprint:
    """The state of one location's files.

    Attributes:
        digest: SHA-1 over the sorted (rel_path, size, mtime_ns) of image files and broken links.
        files: number of image files (broken links included).
        total_bytes: their total size.
        newest_ctime_ns: the latest change of any image file or folder.
    """

    digest: str
    files: int
    total_bytes: int
    newest_ctime_ns: int

    def settled(self, settle_s: float, now_ns: int | None = None) -> bool:
        """Return whether nothing changed during the last ``settle_s`` seconds."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        return now_ns - self.newest_ctime_ns >= settle_s * 1e9


def listing_digest(scan: ScanResult) -> str:
    """Return the digest of a scan's listing (see ``Fingerprint.digest``)."""
    digest = hashlib.sha1(usedforsecurity=False)
    for entry in scan.files:
        digest.update(f"{entry.rel_path}\0{entry.size}\0{entry.mtime_ns}\n".encode())
    for path in scan.broken_links:
        digest.update(f"{path}\0broken\n".encode())
    return digest.hexdigest()


def fingerprint_scan(scan: ScanResult) -> Fingerprint:
    """Summarize a scan as a fingerprint."""
    return Fingerprint(
        digest=listing_digest(scan),
        files=len(scan.files) + len(scan.broken_links),
        total_bytes=sum(entry.size for entry in scan.files),
        newest_ctime_ns=scan.newest_ctime_ns,
    )


def fingerprint_location(root: Path, folder: str) -> Fingerprint:
    """Walk ``root/folder`` (stat only) and return its fingerprint."""
    return fingerprint_scan(scan_location(root, folder))
