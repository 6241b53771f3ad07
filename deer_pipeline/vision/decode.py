"""Decode an image file once into an upright RGB array, as small as the consumers allow.

Decoding is the CPU cost that competes with inference, so JPEGs are decoded at a reduced size with
Pillow's ``draft`` (DCT scaling by 1/2, 1/4 or 1/8 inside libjpeg: about 2x faster for a 1920x1080
frame decoded to 960x540). ``draft`` never returns less than the size asked for, so asking for the
consumer's long side keeps every consumer exact enough. EXIF orientation is applied, and the scale
from the decoded array back to the full-size upright image is kept, so boxes found on the array are
reported in full-size upright pixels.
"""

from __future__ import annotations

import io
import os
import sys
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, JpegImagePlugin

# EXIF orientations that swap width and height (90 or 270 degree rotations).
_TRANSPOSED = {5, 6, 7, 8}
_ORIENTATION_TAG = 274


class DecodeError(Exception):
    """An image could not be decoded; ``reason`` says why in words (stored in ``images.error``)."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class DecodedImage:
    """An upright RGB image, possibly decoded at reduced size.

    Attributes:
        array: (h, w, 3) uint8 RGB, upright (EXIF orientation applied).
        width: width of the full-size upright image, in pixels.
        height: height of the full-size upright image, in pixels.
        scale_x: full-size pixels per decoded pixel along x (1.0 when not reduced).
        scale_y: full-size pixels per decoded pixel along y.
    """

    array: np.ndarray
    width: int
    height: int
    scale_x: float
    scale_y: float

    @property
    def reduced(self) -> bool:
        """Whether the array is smaller than the full-size image."""
        return self.array.shape[1] != self.width or self.array.shape[0] != self.height


def read_bytes(path: str | os.PathLike) -> bytes:
    """Read a whole file, raising :class:`DecodeError` when it cannot be read.

    Args:
        path: the image file.

    Returns:
        The file's bytes.
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise DecodeError(str(path), f"cannot read file: {exc.strerror or exc}") from exc
    if not data:
        raise DecodeError(str(path), "empty file")
    return data


def decode_bytes(
    data: bytes, min_long_side: int | None = None, path: str = "<bytes>"
) -> DecodedImage:
    """Decode image bytes to an upright RGB array of at least ``min_long_side`` on its long side.

    Args:
        data: the encoded image (JPEG and MPO decode reduced; other formats at full size).
        min_long_side: smallest acceptable long side of the decoded array, in pixels; the image is
            never enlarged. None decodes at full size.
        path: name used in error messages.

    Returns:
        The decoded image with its full-size upright geometry.

    Raises:
        DecodeError: the bytes are not a decodable image (truncated, corrupt, unknown format).
    """
    try:
        with _pil_open()(io.BytesIO(data)) as im:
            full_w, full_h = im.size
            orientation = _orientation(im)
            if min_long_side and isinstance(im, JpegImagePlugin.JpegImageFile):  # MPO too
                long_side = max(full_w, full_h)
                if min_long_side < long_side:
                    ratio = min_long_side / long_side
                    im.draft("RGB", (max(1, round(full_w * ratio)), max(1, round(full_h * ratio))))
            im.load()
            upright = ImageOps.exif_transpose(im) if orientation != 1 else im
            rgb = upright if upright.mode == "RGB" else upright.convert("RGB")
            array = np.asarray(rgb)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DecodeError(path, f"cannot decode image: {exc}") from exc
    if orientation in _TRANSPOSED:
        full_w, full_h = full_h, full_w
    h, w = array.shape[:2]
    return DecodedImage(array, full_w, full_h, full_w / w, full_h / h)


def decode_file(path: str | os.PathLike, min_long_side: int | None = None) -> DecodedImage:
    """Read and decode one image file (see :func:`decode_bytes`).

    Args:
        path: the image file.
        min_long_side: smallest acceptable long side of the decoded array; None for full size.

    Returns:
        The decoded image.

    Raises:
        DecodeError: the file cannot be read or decoded.
    """
    return decode_bytes(read_bytes(path), min_long_side, str(path))


def _orientation(im: Image.Image) -> int:
    """Return the EXIF orientation tag (1..8), 1 when absent or invalid."""
    try:
        value = int(im.getexif().get(_ORIENTATION_TAG, 1))
    except (TypeError, ValueError, SyntaxError, OSError):
        return 1
    return value if 1 <= value <= 8 else 1


def _pil_open():
    """Return Pillow's own ``Image.open``.

    Importing ultralytics replaces ``Image.open`` with a wrapper that, on the first file Pillow
    cannot identify, tries to pip-install a HEIF plugin (a network call, and minutes offline). A
    corrupt trail-camera file must simply fail, so decoding bypasses that wrapper.
    """
    opener = Image.open
    if opener.__module__ != Image.__name__:
        patches = sys.modules.get("ultralytics.utils.patches")
        opener = getattr(patches, "_image_open", opener)
    return opener
