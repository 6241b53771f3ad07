"""Walk one camera location folder and list its image files, with what was skipped and why.

SD cards nest their photos (``DCIM/100MEDIA``), people copy them with symlinks, and macOS, Windows
and sync tools leave litter. The walk follows directory symlinks but never enters a directory it
is already inside (a loop) or has already walked (a second link to it); both are recorded, not
fatal. Hidden entries and files without an image suffix are skipped and counted; nothing is read
here, only ``stat``-ed, so the same walk serves the sensor's cheap fingerprint and the ingest.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from deer_pipeline.ingest.locations import is_hidden

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".tif", ".tiff", ".webp", ".bmp", ".heic", ".heif"}
)


@dataclass(frozen=True)
class FileEntry:
    """One candidate image file as seen by ``stat`` (symlinks resolved).

    Attributes:
        rel_path: path relative to the image root, ``/``-separated, starting with the folder.
        path: absolute path to open.
        size: size in bytes.
        mtime_ns: modification time.
        ctime_ns: inode change time; it moves on every write, even when a copy tool later
            restores an old mtime, so it tells whether the file is still being written.
    """

    rel_path: str
    path: str
    size: int
    mtime_ns: int
    ctime_ns: int


@dataclass
class ScanResult:
    """What one walk of a location found.

    Attributes:
        files: image candidates, sorted by ``rel_path``.
        broken_links: ``rel_path`` of image-named symlinks whose target is missing.
        skipped: counts per reason (``hidden_files``, ``hidden_dirs``, ``non_images``,
            ``symlink_loops``, ``repeated_dirs``, ``unreadable_dirs``, ``undecodable_names``,
            ``special_files``).
        notes: one line per loop, unreadable folder or undecodable name (what and where).
        newest_ctime_ns: the latest change time of any listed file or walked folder; a folder's
            time moves when an entry is added, removed or renamed.
        found: whether the location folder exists.
    """

    files: list[FileEntry] = field(default_factory=list)
    broken_links: list[str] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    newest_ctime_ns: int = 0
    found: bool = True


def is_image_name(name: str) -> bool:
    """Return whether a file name has an image suffix (case-insensitive)."""
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def _encodable(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # bytes that are not UTF-8 arrive as lone surrogates
        return False
    return True


def scan_location(root: Path, folder: str) -> ScanResult:
    """Walk ``root/folder`` recursively and list its image files.

    Args:
        root: the image root (``DEER_IMAGE_ROOT``).
        folder: the location folder's original name.

    Returns:
        The files, skips and notes; ``found`` is False when the folder does not exist.
    """
    result = ScanResult()
    top = os.path.join(root, folder)
    try:
        top_stat = os.stat(top)
    except FileNotFoundError:
        result.found = False
        return result
    if not stat.S_ISDIR(top_stat.st_mode):
        result.found = False
        return result
    result.newest_ctime_ns = top_stat.st_ctime_ns
    seen: set[tuple[int, int]] = set()
    # Folders to walk: (absolute path, rel path, (dev, ino), the (dev, ino) of its parents).
    # Real folders are walked before folders reached through a symlink, so a file's rel_path is
    # its real path whenever it has one, whatever order the file system lists entries in.
    ident = (top_stat.st_dev, top_stat.st_ino)
    stack = [(top, folder, ident, frozenset())]
    linked: list = []
    while stack or linked:
        path, rel, ident, parents = stack.pop() if stack else linked.pop(0)
        if ident in parents:
            result.skipped["symlink_loops"] += 1
            result.notes.append(f"{rel}: symlink loop (points back to a parent folder)")
        elif ident in seen:
            result.skipped["repeated_dirs"] += 1
            result.notes.append(f"{rel}: folder already scanned through another path")
        else:
            seen.add(ident)
            _walk_dir(path, rel, parents | {ident}, stack, linked, result)
    result.files.sort(key=lambda f: f.rel_path)
    result.broken_links.sort()
    return result


def _walk_dir(path, rel, parents, stack, linked, result: ScanResult) -> None:
    try:
        entries = sorted(os.scandir(path), key=lambda e: e.name)
    except OSError as exc:
        result.skipped["unreadable_dirs"] += 1
        result.notes.append(f"{rel}: folder not readable ({exc.strerror or exc})")
        return
    for entry in entries:
        name = entry.name
        entry_rel = f"{rel}/{name}"
        if not _encodable(name):
            result.skipped["undecodable_names"] += 1
            result.notes.append(f"{rel}: name is not valid UTF-8: {name!r}")
            continue
        try:
            st = entry.stat(follow_symlinks=True)
        except FileNotFoundError:
            if not entry.is_symlink():
                continue  # removed between listing and stat: gone, not skipped
            if is_hidden(name):
                result.skipped["hidden_files"] += 1
            elif is_image_name(name):
                result.broken_links.append(entry_rel)
            else:
                result.skipped["non_images"] += 1
            continue
        except OSError as exc:  # ELOOP: a symlink chain that points at itself; EACCES
            loop = exc.errno == errno.ELOOP
            result.skipped["symlink_loops" if loop else "special_files"] += 1
            result.notes.append(f"{entry_rel}: cannot stat ({exc.strerror or exc})")
            continue
        if stat.S_ISDIR(st.st_mode):
            if is_hidden(name):
                result.skipped["hidden_dirs"] += 1
                continue
            result.newest_ctime_ns = max(result.newest_ctime_ns, st.st_ctime_ns)
            item = (entry.path, entry_rel, (st.st_dev, st.st_ino), parents)
            (linked if entry.is_symlink() else stack).append(item)
        elif stat.S_ISREG(st.st_mode):
            if is_hidden(name):
                result.skipped["hidden_files"] += 1
            elif not is_image_name(name):
                result.skipped["non_images"] += 1
            else:
                result.newest_ctime_ns = max(result.newest_ctime_ns, st.st_ctime_ns)
                result.files.append(
                    FileEntry(entry_rel, entry.path, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
                )
        else:
            result.skipped["special_files"] += 1
