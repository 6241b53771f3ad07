"""Read a file once, whole, and hash it; notice when it is still being written.

The bytes read here are the bytes hashed and parsed, so the file is read exactly once per ingest.
A file is "still being written" when its size or modification time at the end of the read differ
from the scan's ``stat`` (or the read returned a different length): the caller leaves it for the
next run instead of ingesting half a photo. ``hashlib`` releases the GIL on large buffers, so
this runs well in a thread pool.
"""

from __future__ import annotations

import hashlib
import os

from deer_pipeline.ingest.scan import FileEntry


class StillWriting(Exception):
    """The file changed while it was being read (a copy in progress)."""


class TooLarge(Exception):
    """The file is larger than the configured limit; not read."""


def sha256_hex(data: bytes) -> str:
    """Return the SHA-256 of ``data`` as 64 hex digits."""
    return hashlib.sha256(data).hexdigest()


def read_whole(entry: FileEntry, max_bytes: int) -> bytes:
    """Read a file completely, checking it did not change since it was scanned.

    Args:
        entry: the scanned file (its size and mtime are the first ``stat``).
        max_bytes: refuse files larger than this without reading them.

    Returns:
        The file's content.

    Raises:
        StillWriting: size or mtime moved between the scan and the end of the read.
        TooLarge: the file exceeds ``max_bytes``.
        OSError: the file cannot be opened or read (``FileNotFoundError``: it vanished).
    """
    with open(entry.path, "rb") as handle:
        before = os.fstat(handle.fileno())
        if before.st_size > max_bytes:
            raise TooLarge(before.st_size)
        data = handle.read()
        after = os.fstat(handle.fileno())
    moved = (after.st_size, after.st_mtime_ns) != (entry.size, entry.mtime_ns)
    if moved or len(data) != after.st_size:
        raise StillWriting(entry.rel_path)
    return data
