"""Camera locations: each top-level folder of the image root, and its Dagster partition key.

Folder names come from people and SD cards ("Asian Plains", "h5r+r", "Ridge #2 (old)"). Partition
keys must be safe in URLs, selection ranges and file names, and stable across runs without knowing
the other folders. So a key is the folder name itself when it is already plain
(``[A-Za-z0-9_-]``), otherwise a lowercase slug plus a short hash of the original name, which
keeps two folders that slug alike ("h5r+r", "h5r r") apart. The ``locations`` table keeps the
original name.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

_PLAIN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_NON_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class Location:
    """A camera location: its partition key and its folder's original name."""

    key: str
    folder: str


def location_key(folder: str) -> str:
    """Return the stable, safe partition key for a location folder name.

    Args:
        folder: the folder's name as found on disk (not a path).

    Returns:
        The name itself if it is plain, else ``<slug>-<8 hex>``.
    """
    if _PLAIN.match(folder):
        return folder
    ascii_name = unicodedata.normalize("NFKD", folder).encode("ascii", "ignore").decode()
    slug = _NON_SLUG.sub("-", ascii_name.lower()).strip("-")[:48] or "location"
    digest = hashlib.sha1(folder.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"{slug}-{digest}"


def is_hidden(name: str) -> bool:
    """Return whether a file or folder name is hidden (dot files, macOS and Windows litter)."""
    return name.startswith(".") or name in {"__MACOSX", "System Volume Information", "$RECYCLE.BIN"}


def discover_locations(root: Path) -> list[Location]:
    """List the camera locations under ``root`` (top-level folders, hidden ones skipped), sorted.

    Args:
        root: the image root (``DEER_IMAGE_ROOT``).

    Returns:
        One ``Location`` per top-level folder; empty if the root does not exist.
    """
    if not root.is_dir():
        return []
    found = [
        Location(location_key(entry.name), entry.name)
        for entry in root.iterdir()
        if entry.is_dir() and not is_hidden(entry.name)
    ]
    return sorted(found, key=lambda loc: loc.key)
