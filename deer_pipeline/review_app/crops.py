"""Crops of detections for the review pages: cut from the original photo, cached as JPEG.

A crop is named by detection id only (no URL ever carries a path); the image is found through the
database (``images.rel_path`` under the image root) and decoded upright by
``deer_pipeline.vision.decode`` (EXIF orientation handled there), with a margin around the box.
Crops are cached under ``$DEER_HOME/review-crops`` (detection ids are stable across re-runs; a
detection whose box changed gets a new cache name because the box is part of it).
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from deer_pipeline.exports.gallery import cut_thumbnail

CROP_SIZE = 256


class CropStore:
    """Cut-once crops by detection id.

    Args:
        image_root: ``DEER_IMAGE_ROOT``.
        cache_dir: where crops are kept (``$DEER_HOME/review-crops``).
        size: longest side of a crop in pixels.
    """

    def __init__(self, image_root: Path, cache_dir: Path, size: int = CROP_SIZE):
        self.image_root = Path(image_root)
        self.cache_dir = Path(cache_dir)
        self.size = size

    def path(self, cur, detection_id: int) -> Path | None:
        """Return the cached JPEG of a detection (cut now if needed); None if unknown/unreadable."""
        cur.execute(
            "SELECT i.rel_path, d.x1, d.y1, d.x2, d.y2 FROM detections d"
            " JOIN images i ON i.id = d.image_id WHERE d.id = %s",
            (detection_id,),
        )
        row = cur.fetchone()
        if row is None:
            return None
        rel_path, *box = row
        digest = hashlib.sha1(repr((rel_path, box, self.size)).encode()).hexdigest()[:10]
        target = self.cache_dir / str(detection_id // 1000) / f"{detection_id}-{digest}.jpg"
        if target.is_file():
            return target
        source = (self.image_root / rel_path).resolve()
        if not source.is_relative_to(self.image_root.resolve()):
            return None
        partial = target.with_suffix(f".{os.getpid()}.{threading.get_ident()}.part")
        if not cut_thumbnail(source, box, partial, self.size):
            return None
        partial.replace(target)  # atomic: a concurrent reader never sees half a file
        return target
