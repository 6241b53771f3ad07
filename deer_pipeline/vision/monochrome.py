"""Whether a detection was photographed in colour or in infrared/monochrome.

Trail cameras switch to infrared at night: the frame is grey (or nearly, a faint tint), and an
animal looks different enough that re-identification must know which condition each sighting
was taken in (the pair model compares day with day and night with night on their own scales).
This is measured where the pixels already are, on the decoded image the pipeline holds: the mean
chroma (max minus min of R, G, B) over the box. A grey frame decoded from JPEG has a chroma of
0-1; colour fur and vegetation score tens.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

MONOCHROME_CHROMA = 6.0
"""Mean chroma (0-255 scale) below which a box region counts as monochrome."""

GREY_MODES = ("L", "LA", "I", "I;16")
"""Pillow modes of a file stored as greyscale (most infrared frames are grey RGB JPEGs)."""

_MAX_SIDE = 64  # pixels sampled per box side: the mean of a grey region needs few of them


def box_chroma(array: np.ndarray, box, scale_x: float = 1.0, scale_y: float = 1.0) -> float:
    """Return the mean chroma of a box region (the whole image when the box is empty).

    Args:
        array: (h, w, 3) uint8 RGB, possibly decoded at reduced size.
        box: (x1, y1, x2, y2) in full-size pixels.
        scale_x: full-size pixels per array pixel along x.
        scale_y: the same along y.
    """
    h, w = array.shape[:2]
    x1, x2 = (int(np.clip(v / scale_x, 0, w)) for v in (box[0], box[2]))
    y1, y2 = (int(np.clip(v / scale_y, 0, h)) for v in (box[1], box[3]))
    region = array[y1:y2, x1:x2] if x2 > x1 and y2 > y1 else array
    step_y = max(1, region.shape[0] // _MAX_SIDE)
    step_x = max(1, region.shape[1] // _MAX_SIDE)
    sample = region[::step_y, ::step_x].astype(np.int16)
    return float((sample.max(axis=2) - sample.min(axis=2)).mean())


def is_monochrome(array: np.ndarray, boxes: np.ndarray, scale_x=1.0, scale_y=1.0) -> np.ndarray:
    """Return, per box, whether its region is monochrome (infrared), shape (n,) bool."""
    return np.array(
        [box_chroma(array, b, scale_x, scale_y) < MONOCHROME_CHROMA for b in boxes], dtype=bool
    )


def frame_is_monochrome(path: Path) -> bool | None:
    """Return whether an image file is an infrared (grey) frame; None when it cannot be read.

    For boxes the pipeline did not measure (imported detections). The JPEG is decoded at 1/8
    scale (``draft``) and measured as a box over the whole frame. On the 75 real sample photos
    in ``../shared/data/camera-traps`` the grey ones (32, all stored as RGB) measure at most 1.1,
    the colour ones at least 7.7.

    Args:
        path: an image file.
    """
    try:
        with Image.open(path) as image:
            if image.mode in GREY_MODES:
                return True
            image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
            array = np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return None
    return box_chroma(array, (0, 0, 0, 0)) < MONOCHROME_CHROMA
