"""Turn one file into the facts of an ``images`` row: read once, hash, check, read EXIF.

JPEGs (nearly every trail-camera frame) go through the marker walk in ``formats`` and the EXIF
reader in ``exif``; other real images (a PNG named ``.jpg``, TIFF, WebP, BMP, GIF) are opened by
Pillow, header only, after a pixel-count check where the header can be read without it. Nothing is
decoded. Every problem a hostile file can cause ends as an ``Inspection`` with outcome ``failed``
and the reason in words; a file still being copied is ``pending``; one that vanished mid-run is
``vanished``.
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass

from PIL import Image

from deer_pipeline.ingest.exif import ExifError, ExifFields, exif_from_pil_info, parse_exif
from deer_pipeline.ingest.formats import ImageError, png_size, read_jpeg_header, sniff_format
from deer_pipeline.ingest.hashing import StillWriting, TooLarge, read_whole, sha256_hex
from deer_pipeline.ingest.scan import FileEntry
from deer_pipeline.ingest.timestamps import CaptureTime, capture_time

READ_ERROR = "cannot read the file"  # transient (permissions, I/O): retried on every run
_SWAPPED = frozenset({5, 6, 7, 8})  # orientations that rotate by 90 or 270 degrees
_SUFFIXES = {
    "JPEG": (".jpg", ".jpeg", ".jpe"),
    "PNG": (".png",),
    "TIFF": (".tif", ".tiff"),
    "WEBP": (".webp",),
    "BMP": (".bmp",),
}


@dataclass(frozen=True)
class ImageFacts:
    """What a usable image says about itself (width and height are after EXIF orientation)."""

    width: int
    height: int
    orientation: int
    format: str
    color_mode: str
    captured: CaptureTime | None
    make: str | None
    model: str | None
    serial: str | None
    note: str | None


@dataclass(frozen=True)
class Inspection:
    """The result of inspecting one file.

    Attributes:
        rel_path: the file's ``rel_path``.
        outcome: ``image``, ``failed``, ``pending`` (still being written) or ``vanished``.
        size: bytes read (None unless read).
        mtime_ns: the scanned modification time.
        sha256: content hash (None unless read).
        facts: set when ``outcome == "image"``.
        error: the reason in words when ``outcome == "failed"``.
    """

    rel_path: str
    outcome: str
    size: int | None = None
    mtime_ns: int | None = None
    sha256: str | None = None
    facts: ImageFacts | None = None
    error: str | None = None


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ImageError(
            f"refused: {width}x{height} pixels ({width * height / 1e6:.0f} MP) is over the "
            f"{max_pixels / 1e6:g} MP limit (a decompression bomb, or not a camera frame)"
        )


def _pillow_header(data: bytes, fmt: str, max_pixels: int) -> tuple[int, int, str, bytes | None]:
    if fmt == "HEIF":
        raise ImageError("HEIF/HEIC image: not supported by the decoder (convert it to JPEG)")
    if fmt == "PNG":
        _check_pixels(*png_size(data), max_pixels)
    try:
        with Image.open(io.BytesIO(data), formats=[fmt]) as image:
            width, height = image.size
            _check_pixels(width, height, max_pixels)
            mode, info = image.mode, dict(image.info)
            image.verify()  # PNG: chunk CRCs and IEND, so a cut-off file is caught
    except Image.DecompressionBombError as exc:
        raise ImageError(f"refused: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise ImageError(f"unreadable {fmt} image: {exc}") from exc
    return width, height, mode, data if fmt == "TIFF" else exif_from_pil_info(info)


def describe_image(data: bytes, name: str, mtime_ns: int, max_pixels: int) -> ImageFacts:
    """Check an image's content and read its facts without decoding pixels.

    Args:
        data: the whole file.
        name: the file name (for the name date patterns).
        mtime_ns: the file's modification time (the last-resort capture time).
        max_pixels: refuse images declaring more pixels than this.

    Raises:
        ImageError: the content is not a usable image; ``reason`` says why.
    """
    fmt = sniff_format(data)
    if fmt == "JPEG":
        header = read_jpeg_header(data)
        _check_pixels(header.width, header.height, max_pixels)
        width, height, mode, blob = header.width, header.height, header.mode, header.exif
    else:
        width, height, mode, blob = _pillow_header(data, fmt, max_pixels)
    notes = []
    try:
        fields = parse_exif(blob)
    except ExifError as exc:
        fields = ExifFields()
        notes.append(f"EXIF ignored: {exc}")
    orientation = fields.orientation or 1
    if not 1 <= orientation <= 8:
        notes.append(f"EXIF orientation {orientation} is not 1-8; treated as 1")
        orientation = 1
    if orientation in _SWAPPED:
        width, height = height, width
    suffix = os.path.splitext(name)[1].lower()
    if suffix not in _SUFFIXES.get(fmt, ()):
        notes.append(f"{fmt} content under a {suffix or 'suffix-less'} name")
    return ImageFacts(
        width=width,
        height=height,
        orientation=orientation,
        format=fmt,
        color_mode=mode,
        captured=capture_time(fields.datetime_original, fields.datetime, name, mtime_ns),
        make=fields.make,
        model=fields.model,
        serial=fields.serial,
        note="; ".join(notes) or None,
    )


def inspect_file(entry: FileEntry, max_pixels: int, max_bytes: int) -> Inspection:
    """Read, hash and describe one scanned file; never raises for a bad file.

    Args:
        entry: the scanned file.
        max_pixels: pixel limit (see ``describe_image``).
        max_bytes: size limit; larger files are refused unread.

    Returns:
        The inspection (``image``, ``failed``, ``pending`` or ``vanished``).
    """
    base = {"rel_path": entry.rel_path, "mtime_ns": entry.mtime_ns}
    try:
        data = read_whole(entry, max_bytes)
    except FileNotFoundError:
        return Inspection(outcome="vanished", **base)
    except StillWriting:
        return Inspection(outcome="pending", **base)
    except TooLarge as exc:
        size_mib, limit_mib = exc.args[0] / 2**20, max_bytes / 2**20
        reason = f"refused: {size_mib:.0f} MiB is over the {limit_mib:g} MiB file size limit"
        return Inspection(outcome="failed", size=exc.args[0], error=reason, **base)
    except OSError as exc:
        reason = f"{READ_ERROR}: {exc.strerror or exc}"
        return Inspection(outcome="failed", size=entry.size, error=reason, **base)
    sha = sha256_hex(data)
    try:
        facts = describe_image(data, os.path.basename(entry.rel_path), entry.mtime_ns, max_pixels)
    except ImageError as exc:
        return Inspection(outcome="failed", size=len(data), sha256=sha, error=exc.reason, **base)
    return Inspection(outcome="image", size=len(data), sha256=sha, facts=facts, **base)
