"""Import ultralytics for a machine with no network, and undo its global side effects.

Set before the import: ``YOLO_OFFLINE=1`` (no update or hub checks). After it: settings sync off
(no analytics), and Pillow's own ``Image.open`` put back. ultralytics replaces ``Image.open`` with
a wrapper that, the first time Pillow cannot identify a file, runs a pip install of a HEIF plugin:
a network call (minutes of retries offline) in the middle of ingesting a corrupt trail-camera
file. Every part of the project imports ultralytics through :func:`import_ultralytics`.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType


def import_ultralytics() -> ModuleType:
    """Import ultralytics offline (idempotent) and return the module.

    Returns:
        The ``ultralytics`` package, with sync disabled and ``PIL.Image.open`` restored.
    """
    os.environ["YOLO_OFFLINE"] = "1"
    import ultralytics
    from PIL import Image

    ultralytics.settings.update({"sync": False})
    patches = sys.modules.get("ultralytics.utils.patches")
    original = getattr(patches, "_image_open", None)
    if original is not None and Image.open is not original:
        Image.open = original
    return ultralytics
