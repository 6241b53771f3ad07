"""ultralytics on a machine with no network, with its global side effects undone (8.4.x).

Set before the import: ``YOLO_OFFLINE=1`` (no update or hub checks). After it: settings sync off
(no analytics), and Pillow's own ``Image.open`` put back. ultralytics (``utils/patches.py``)
replaces ``Image.open`` with a wrapper that, the first time Pillow cannot identify a file, runs a
pip install of a HEIF plugin: a network call (minutes of retries offline) in the middle of
ingesting a corrupt trail-camera file. Every part of the project imports ultralytics through
:func:`import_ultralytics`, and decodes through :func:`pillow_open`, which bypasses the wrapper even
when something else imported ultralytics first. Training (:func:`offline_yolo`) also stubs the
dataset check's ``check_font``, which downloads Arial.ttf.
"""

from __future__ import annotations

import sys
from types import ModuleType

from PIL import Image

from deer_pipeline.config import export

WRITTEN_FOR = ("ultralytics", ">=8.4,<8.5")
PATCHES_MODULE = "ultralytics.utils.patches"
ORIGINAL_OPEN = "_image_open"  # the module's copy of Pillow's own Image.open


def _pillow_original():
    patches = sys.modules.get(PATCHES_MODULE)
    return getattr(patches, ORIGINAL_OPEN, None)


def import_ultralytics() -> ModuleType:
    """Import ultralytics offline (idempotent) and return the module.

    Returns:
        The ``ultralytics`` package, with sync disabled and ``PIL.Image.open`` restored.
    """
    export("YOLO_OFFLINE", "1")
    import ultralytics

    ultralytics.settings.update({"sync": False})
    original = _pillow_original()
    if original is not None and Image.open is not original:
        Image.open = original
    return ultralytics


def pillow_open():
    """Return Pillow's own ``Image.open``, whether or not ultralytics has replaced it."""
    opener = Image.open
    if opener.__module__ != Image.__name__:
        opener = _pillow_original() or opener
    return opener


def _skip_font_download(font: str = "Arial.ttf") -> None:
    """Stand in for ultralytics' check_font: plots are off, so no font is needed or fetched."""
    return None


def offline_yolo():
    """Import ultralytics strictly offline for training and return its ``YOLO`` class."""
    import_ultralytics()
    import ultralytics.data.utils as data_utils
    from ultralytics import YOLO

    data_utils.check_font = _skip_font_download
    return YOLO
