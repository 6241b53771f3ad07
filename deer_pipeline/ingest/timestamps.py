"""When a frame was taken: EXIF first, then the file name, then the file's modification time.

``captured_at`` is the camera's local time as written, naive, never shifted to another zone
(trail cameras have no zone setting). Sources, in order of trust:

1. ``exif_original`` — EXIF DateTimeOriginal;
2. ``exif_datetime`` — IFD0 DateTime (some cameras fill only this one);
3. ``filename`` — names real cameras and renaming tools write: ``LOC_20210527_124759``,
   ``2021_05_27_12_47_59``, ``2021-05-27-12-47-59``, ``20210527124759``; or a date alone
   (``2021-05-27``, midnight, not exact);
4. ``file_mtime`` — last resort (a copied file may carry the copy's time: not exact).

``exact`` tells whether the value is a clock reading to the second; bursts use only exact times.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

_EXIF_TIME = re.compile(r"^\s*(\d{4})[:/.-](\d{1,2})[:/.-](\d{1,2})[ T]+(\d{1,2}):(\d{2}):(\d{2})")
_NAME_TIME = re.compile(
    r"(?<!\d)((?:19|20)\d\d)[-_.]?(\d\d)[-_.]?(\d\d)"  # date
    r"[-_.T ]?(\d\d)[-_.:h]?(\d\d)[-_.:m]?(\d\d)(?!\d)"  # time
)
_NAME_DATE = re.compile(r"(?<!\d)((?:19|20)\d\d)([-_.])(\d\d)\2(\d\d)(?!\d)")


@dataclass(frozen=True)
class CaptureTime:
    """A capture time with where it came from."""

    value: datetime
    source: str
    exact: bool


def _make(parts) -> datetime | None:
    try:
        return datetime(*(int(p) for p in parts))
    except ValueError:  # month 13, hour 24, year 0000 ("0000:00:00 00:00:00" = unset clock)
        return None


def parse_exif_datetime(text: str | None) -> datetime | None:
    """Parse an EXIF date-time (``YYYY:MM:DD HH:MM:SS``, separators tolerated); None if unusable."""
    if not text:
        return None
    match = _EXIF_TIME.match(text)
    return _make(match.groups()) if match else None


def time_from_filename(name: str) -> tuple[datetime, bool] | None:
    """Find a date-time (exact) or a date (midnight, not exact) in a file name.

    Args:
        name: the file name (not a path).

    Returns:
        ``(value, exact)`` or None.
    """
    for match in _NAME_TIME.finditer(name):
        value = _make(match.groups())
        if value is not None:
            return value, True
    for match in _NAME_DATE.finditer(name):
        value = _make((match.group(1), match.group(3), match.group(4)))
        if value is not None:
            return value, False
    return None


def capture_time(
    datetime_original: str | None, datetime_ifd0: str | None, name: str, mtime_ns: int
) -> CaptureTime | None:
    """Choose the capture time of one file.

    Args:
        datetime_original: EXIF DateTimeOriginal text, or None.
        datetime_ifd0: EXIF DateTime text, or None.
        name: the file name, for the name patterns.
        mtime_ns: the file's modification time (local time of this machine is used).

    Returns:
        The first usable time of the four sources; None only when none is usable (no EXIF
        time, no date in the name, and an mtime a datetime cannot hold).
    """
    value = parse_exif_datetime(datetime_original)
    if value is not None:
        return CaptureTime(value, "exif_original", True)
    value = parse_exif_datetime(datetime_ifd0)
    if value is not None:
        return CaptureTime(value, "exif_datetime", True)
    found = time_from_filename(name)
    if found is not None:
        return CaptureTime(found[0], "filename", found[1])
    try:
        value = datetime.fromtimestamp(mtime_ns // 1_000_000_000)
    except (ValueError, OverflowError, OSError):  # an mtime beyond year 9999 (or before 1)
        return None
    return CaptureTime(value, "file_mtime", False)
