"""Small JPEG/PNG files with camera EXIF for ingest tests (unique content per seed)."""

from __future__ import annotations

import io
import os
import random
from datetime import datetime  # noqa: F401 (re-exported for tests)
from pathlib import Path

from PIL import ExifTags, Image

OLD = 1_600_000_000  # a fixed past mtime (2020-09-13) so files are settled and stable


def image(size=(64, 48), mode="RGB", seed=0) -> Image.Image:
    """A tiny noisy image: distinct content for distinct seeds."""
    rng = random.Random(seed)
    bands = len(Image.new(mode, (1, 1)).getbands())
    raw = bytes(rng.randrange(256) for _ in range(size[0] * size[1] * bands))
    return Image.frombytes(mode, size, raw)


def exif(
    when: datetime | None = None,
    make: str | None = None,
    model: str | None = None,
    orientation: int | None = None,
    ifd0_time: datetime | None = None,
) -> Image.Exif:
    """EXIF with the given tags (DateTimeOriginal in the Exif IFD, as cameras write it)."""
    data = Image.Exif()
    if make:
        data[ExifTags.Base.Make] = make
    if model:
        data[ExifTags.Base.Model] = model
    if orientation:
        data[ExifTags.Base.Orientation] = orientation
    if ifd0_time:
        data[ExifTags.Base.DateTime] = ifd0_time.strftime("%Y:%m:%d %H:%M:%S")
    if when:
        data.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = when.strftime(
            "%Y:%m:%d %H:%M:%S"
        )
    return data


def jpeg_bytes(seed=0, size=(64, 48), mode="RGB", fmt="JPEG", **tags) -> bytes:
    """Encode a tiny image with EXIF tags (see ``exif``)."""
    buf = io.BytesIO()
    extra = {"exif": exif(**tags)} if tags else {}
    image(size, mode, seed).save(buf, fmt, **extra)
    return buf.getvalue()


def write(path: Path, data: bytes, mtime: float = OLD) -> Path:
    """Write ``data`` to ``path`` (parents created) with a fixed old mtime."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))
    return path


def with_frame_size(data: bytes, width: int, height: int) -> bytes:
    """Return a JPEG whose frame header declares another size (a decompression-bomb header)."""
    at = data.index(b"\xff\xc0")
    out = bytearray(data)
    out[at + 5 : at + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(out)
