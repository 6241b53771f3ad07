"""Write a rendered frame as a camera-like JPEG with EXIF.

The ingest stage reads the capture time from EXIF ``DateTimeOriginal`` (in the Exif IFD, as real
cameras write it) and the camera make/model from IFD0, so the synthetic files carry the same tags.
"""

from __future__ import annotations

import io
from datetime import datetime

from PIL import ExifTags, Image

JPEG_QUALITY = 85


def exif_bytes(when: datetime, make: str, model: str) -> bytes:
    """Return EXIF with Make, Model, DateTime (IFD0) and DateTimeOriginal/Digitized (Exif IFD)."""
    exif = Image.Exif()
    stamp = when.strftime("%Y:%m:%d %H:%M:%S")
    exif[ExifTags.Base.Make] = make
    exif[ExifTags.Base.Model] = model
    exif[ExifTags.Base.DateTime] = stamp
    exif[ExifTags.Base.Orientation] = 1
    exif[ExifTags.Base.Software] = "deer_pipeline synthetic"
    ifd = exif.get_ifd(ExifTags.IFD.Exif)
    ifd[ExifTags.Base.DateTimeOriginal] = stamp
    ifd[ExifTags.Base.DateTimeDigitized] = stamp
    return exif.tobytes()


def jpeg_bytes(
    image: Image.Image, when: datetime, make: str, model: str, quality: int = JPEG_QUALITY
) -> bytes:
    """Encode ``image`` as a JPEG with camera EXIF and return the bytes."""
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality, exif=exif_bytes(when, make, model))
    return buf.getvalue()
