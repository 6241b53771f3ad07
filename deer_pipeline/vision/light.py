"""Whether a frame is an infrared night shot: the camera's own day/night switch, read from pixels.

After dark a trail camera switches to infrared and writes a grey picture, most often still as a
three-channel JPEG (32 of the 75 real sample photos in ``../shared/data/camera-traps`` are grey
RGB; none is stored as greyscale), so the file's colour mode alone misses them. A JPEG is decoded
at 1/8 scale (``draft``, a few milliseconds) and called infrared when its channels hardly differ:
the mean of |R - G| + |G - B| on those 75 photos is at most 1.34 for the grey ones and at least
10.45 for the colour ones; the cut sits at 4.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

GREY_MAX = 4.0
GREY_MODES = ("L", "LA", "I", "I;16")


def is_infrared(path: Path) -> bool | None:
    """Return whether the image is an infrared (grey) frame; None when it cannot be read.

    Args:
        path: an image file.
    """
    try:
        with Image.open(path) as image:
            if image.mode in GREY_MODES:
                return True
            image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
            pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return None
    spread = np.abs(pixels[..., 0] - pixels[..., 1]).mean()
    spread += np.abs(pixels[..., 1] - pixels[..., 2]).mean()
    return bool(spread < GREY_MAX)
