"""Tell what a file really is, and check a JPEG's structure without decoding it.

Trail-camera cards hold more than clean JPEGs: zero-byte files from a dead battery, files cut off
by a pulled card, web pages and PNGs saved under a ``.jpg`` name, headers that declare a billion
pixels. Decoding every frame at ingest would cost more than hashing it, so a JPEG is checked by
walking its markers instead: the frame header gives the size and colour components, the first
Exif APP1 segment gives the metadata, and an end-of-image marker after the first scan proves the
entropy-coded data is complete (``FF D9`` cannot occur inside it: ``FF`` bytes there are stuffed).
Every refusal raises ``ImageError`` with the reason in words, as stored in ``images.error``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# Start-of-frame markers carry the image size; C4 (DHT), C8 (JPG) and CC (DAC) do not.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE = frozenset({0x01, 0xD8, *range(0xD0, 0xD8)})
_JPEG_MODES = {1: "L", 3: "RGB", 4: "CMYK"}
_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif")


class ImageError(Exception):
    """A file that is not a usable image; ``reason`` says why in words."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class JpegHeader:
    """What the markers of a JPEG say, before any decoding.

    Attributes:
        width: stored width in pixels (before EXIF orientation).
        height: stored height in pixels.
        mode: ``L`` (grayscale, e.g. IR frames), ``RGB`` or ``CMYK``.
        exif: the TIFF structure of the first Exif APP1 segment, or None.
    """

    width: int
    height: int
    mode: str
    exif: bytes | None


def sniff_format(data: bytes) -> str:
    """Name the file's real format from its first bytes, whatever its suffix says.

    Returns:
        ``JPEG``, ``PNG``, ``TIFF``, ``WEBP``, ``BMP``, ``GIF`` or ``HEIF``.

    Raises:
        ImageError: empty, HTML, text or unrecognised content.
    """
    if not data:
        raise ImageError("empty file (0 bytes)")
    if data.startswith(b"\xff\xd8"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return "HEIF"
    if data[:2] == b"BM" and len(data) > 26:
        return "BMP"
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head[:256]:
        raise ImageError("not an image: the file is an HTML page")
    sample = data[:512]
    if all(b >= 32 or b in (9, 10, 13) for b in sample):
        raise ImageError("not an image: the file is text")
    raise ImageError(f"not an image: unrecognised content (starts with {data[:8].hex(' ')})")


def read_jpeg_header(data: bytes) -> JpegHeader:
    """Walk a JPEG's markers up to the first scan and check the file is not cut off.

    Args:
        data: the whole file.

    Raises:
        ImageError: truncated, corrupt, or a frame this pipeline cannot use.
    """
    n = len(data)
    pos = 2
    frame = None
    exif = None
    while True:
        if pos >= n:
            raise ImageError("truncated JPEG: the file ends before the image data")
        if data[pos] != 0xFF:
            raise ImageError(f"corrupt JPEG: no marker where one must be (byte {pos})")
        while pos < n and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= n:
            raise ImageError("truncated JPEG: the file ends before the image data")
        marker = data[pos]
        pos += 1
        if marker in _STANDALONE:
            continue
        if marker == 0xD9:
            raise ImageError("corrupt JPEG: end-of-image marker before any image data")
        if pos + 2 > n:
            raise ImageError("truncated JPEG: the file ends inside a header segment")
        (length,) = struct.unpack_from(">H", data, pos)
        end = pos + length
        if length < 2 or end > n:
            raise ImageError("truncated JPEG: the file ends inside a header segment")
        if marker in _SOF and frame is None:
            if length < 8:
                raise ImageError("corrupt JPEG: frame header too short")
            _, height, width, components = struct.unpack_from(">BHHB", data, pos + 2)
            frame = (width, height, components)
        elif marker == 0xE1 and exif is None and data.startswith(b"Exif\x00", pos + 2):
            exif = data[pos + 8 : end]
        elif marker == 0xDA:
            return _finish(data, end, frame, exif)
        pos = end


def _finish(data: bytes, scan_start: int, frame, exif) -> JpegHeader:
    if frame is None:
        raise ImageError("corrupt JPEG: image data without a frame header (no size)")
    width, height, components = frame
    if width == 0 or height == 0:
        raise ImageError(f"corrupt JPEG: the frame header declares {width}x{height} pixels")
    mode = _JPEG_MODES.get(components)
    if mode is None:
        raise ImageError(f"unsupported JPEG: {components} colour components")
    if data.rfind(b"\xff\xd9", scan_start) < 0:
        raise ImageError("truncated JPEG: no end-of-image marker after the image data")
    return JpegHeader(width, height, mode, exif)


def png_size(data: bytes) -> tuple[int, int]:
    """Return the (width, height) a PNG's IHDR declares, read without Pillow.

    Raises:
        ImageError: the header is cut off or is not IHDR.
    """
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise ImageError("truncated PNG: no image header")
    width, height = struct.unpack_from(">II", data, 16)
    return width, height
