"""Decode an image file once into an upright RGB array, as small as the consumers allow.

Decoding is the CPU cost that competes with inference, so JPEGs are decoded at a reduced size (DCT
scaling by 1/2, 1/4 or 1/8 inside libjpeg, as Pillow's ``draft`` does: about 2x faster for a
1920x1080 frame decoded to 960x540), never below the size asked for. Complete JPEGs are decoded by
OpenCV, whose ``imdecode`` releases the GIL for the whole call: with Pillow, 16 decode threads of a
GPU box reached 96 full-size frames/s (GIL-bound), against 900/s for 16 processes. Pillow reads the
header (size, EXIF orientation) and decodes everything else, and truncated files, so that they
fail with Pillow's reason. EXIF orientation is applied, and the scale
from the decoded array back to the full-size upright image is kept, so boxes found on the array are
reported in full-size upright pixels.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageOps, JpegImagePlugin

from deer_pipeline.compat.ultralytics import pillow_open

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
        with pillow_open()(io.BytesIO(data)) as im:
            full_w, full_h = im.size
            orientation = _orientation(im)
            array = None
            if isinstance(im, JpegImagePlugin.JpegImageFile) and _complete_jpeg(data):
                array = _decode_jpeg_cv2(data, _reduction(full_w, full_h, min_long_side))
            if array is not None:
                array = _upright(array, orientation)
            elif min_long_side and isinstance(im, JpegImagePlugin.JpegImageFile):  # MPO too
                long_side = max(full_w, full_h)
                if min_long_side < long_side:
                    ratio = min_long_side / long_side
                    im.draft("RGB", (max(1, round(full_w * ratio)), max(1, round(full_h * ratio))))
            if array is None:
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


_REDUCED = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
            8: cv2.IMREAD_REDUCED_COLOR_8}  # fmt: skip
_ROTATE = {3: cv2.ROTATE_180, 6: cv2.ROTATE_90_CLOCKWISE, 8: cv2.ROTATE_90_COUNTERCLOCKWISE}


def _reduction(width: int, height: int, min_long_side: int | None) -> int:
    """Largest DCT scale divisor (1, 2, 4, 8) keeping both sides at or above the target."""
    if not min_long_side or min_long_side >= max(width, height):
        return 1
    ratio = min_long_side / max(width, height)
    want_w, want_h = max(1, round(width * ratio)), max(1, round(height * ratio))
    best = 1
    for r in (2, 4, 8):
        if -(-width // r) >= want_w and -(-height // r) >= want_h:
            best = r
    return best


def _complete_jpeg(data: bytes) -> bool:
    """Whether the data ends with a JPEG end-of-image marker (OpenCV pads truncated files)."""
    return data.rstrip(b"\0")[-2:] == b"\xff\xd9"


def _decode_jpeg_cv2(data: bytes, reduction: int) -> np.ndarray | None:
    """Decode a JPEG with OpenCV (GIL released) to RGB, ignoring orientation; None on failure."""
    flags = _REDUCED[reduction] | cv2.IMREAD_IGNORE_ORIENTATION
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if bgr is None or bgr.ndim != 3 or bgr.shape[2] != 3:
        return None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _upright(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to an array, as Pillow's ``exif_transpose`` does."""
    if orientation in _ROTATE:
        return cv2.rotate(array, _ROTATE[orientation])
    if orientation == 2:
        return cv2.flip(array, 1)
    if orientation == 4:
        return cv2.flip(array, 0)
    if orientation == 5:
        return np.ascontiguousarray(cv2.transpose(array))
    if orientation == 7:
        return cv2.rotate(cv2.transpose(array), cv2.ROTATE_180)
    return array
