"""Read the few EXIF fields the pipeline needs, straight from the TIFF structure.

Pillow's ``getexif()`` converts every tag of every directory (about 0.8 ms per trail-camera frame
here, as long as reading and hashing the file); this reader looks up only Make, Model,
Orientation, DateTime, DateTimeOriginal, BodySerialNumber and the maker note, in about a tenth of
that, and checks every offset against the buffer, so hostile EXIF yields ``ExifError`` (the image
is still ingested, with a note) instead of an exception from deep inside a library.
Camera text fields are cleaned the way cameras write them: NUL-padded (Bushnell writes seven
NULs as its Make) or space-padded (BolyMedia); an empty result is None.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from deer_pipeline.ingest.makernotes import makernote_serial

_MAKE, _MODEL, _ORIENTATION, _DATETIME = 0x010F, 0x0110, 0x0112, 0x0132
_EXIF_IFD, _DNG_SERIAL = 0x8769, 0xC62F
_DATETIME_ORIGINAL, _MAKER_NOTE, _BODY_SERIAL = 0x9003, 0x927C, 0xA431
_IFD0_TAGS = frozenset({_MAKE, _MODEL, _ORIENTATION, _DATETIME, _EXIF_IFD, _DNG_SERIAL})
_EXIF_TAGS = frozenset({_DATETIME_ORIGINAL, _MAKER_NOTE, _BODY_SERIAL})
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 7: 1, 13: 4}  # BYTE ASCII SHORT LONG UNDEFINED IFD
_MAX_ENTRIES = 1024


class ExifError(Exception):
    """The EXIF block is malformed; the message says how."""


@dataclass(frozen=True)
class ExifFields:
    """The EXIF values ingest uses, cleaned; None where absent."""

    make: str | None = None
    model: str | None = None
    orientation: int | None = None
    datetime_original: str | None = None
    datetime: str | None = None
    serial: str | None = None


def clean_text(raw: bytes | str | None) -> str | None:
    """Cut at the first NUL, decode (UTF-8, bad bytes replaced), strip; empty -> None."""
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "replace")
    text = raw.split(b"\x00", 1)[0].decode("utf-8", "replace").strip()
    return text or None


def _read_ifd(blob: bytes, offset: int, order: str, wanted: frozenset) -> dict[int, object]:
    (count,) = struct.unpack_from(order + "H", blob, offset)
    if count > _MAX_ENTRIES:
        raise ExifError(f"EXIF directory claims {count} entries")
    values: dict[int, object] = {}
    for i in range(count):
        entry = offset + 2 + 12 * i
        tag, kind, n = struct.unpack_from(order + "HHI", blob, entry)
        size = _TYPE_SIZES.get(kind)
        if tag not in wanted or size is None or n == 0:
            continue
        total = size * n
        if total <= 4:
            start = entry + 8
        else:
            (start,) = struct.unpack_from(order + "I", blob, entry + 8)
        if start + total > len(blob):
            continue  # a value pointing past the block: ignore that tag only
        if kind in (3, 4, 13):
            fmt = order + ("H" if kind == 3 else "I")
            values[tag] = struct.unpack_from(fmt, blob, start)[0]
        else:
            values[tag] = blob[start : start + total]
    return values


def parse_exif(blob: bytes | None) -> ExifFields:
    """Parse a TIFF-structured EXIF block (with or without its ``Exif`` APP1 prefix).

    Args:
        blob: the APP1 payload of a JPEG, a PNG/WebP ``exif`` chunk, or a whole TIFF file.

    Returns:
        The fields found; all None for an empty block.

    Raises:
        ExifError: the block's structure is broken (bad byte order, offsets out of range).
    """
    if not blob:
        return ExifFields()
    if blob.startswith(b"Exif\x00\x00"):
        blob = blob[6:]
    order = {b"II": "<", b"MM": ">"}.get(blob[:2])
    if order is None:
        raise ExifError("EXIF block has no TIFF byte-order mark")
    try:
        (first,) = struct.unpack_from(order + "I", blob, 4)
        ifd0 = _read_ifd(blob, first, order, _IFD0_TAGS)
        pointer = ifd0.get(_EXIF_IFD)
        sub = _read_ifd(blob, pointer, order, _EXIF_TAGS) if isinstance(pointer, int) else {}
    except struct.error as exc:
        raise ExifError(f"EXIF block is cut off or points outside itself ({exc})") from exc
    make = clean_text(ifd0.get(_MAKE))
    serial = clean_text(sub.get(_BODY_SERIAL)) or clean_text(ifd0.get(_DNG_SERIAL))
    orientation = ifd0.get(_ORIENTATION)
    return ExifFields(
        make=make,
        model=clean_text(ifd0.get(_MODEL)),
        orientation=orientation if isinstance(orientation, int) else None,
        datetime_original=clean_text(sub.get(_DATETIME_ORIGINAL)),
        datetime=clean_text(ifd0.get(_DATETIME)),
        serial=serial or makernote_serial(make, sub.get(_MAKER_NOTE)),
    )


def exif_from_pil_info(info: dict) -> bytes | None:
    """Return the raw EXIF block Pillow found in a non-JPEG file's ``info`` (PNG, WebP), or None."""
    raw = info.get("exif")
    return raw if isinstance(raw, bytes) else None
