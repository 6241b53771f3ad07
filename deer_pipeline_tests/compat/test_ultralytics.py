"""The ultralytics shims work, and each test says when its shim can go."""

import io
import subprocess
import sys
import time

import pytest
from PIL import Image, UnidentifiedImageError

from deer_pipeline import compat
from deer_pipeline.compat import ultralytics as shim
from deer_pipeline.compat.ultralytics import import_ultralytics


def test_ultralytics_import_leaves_pillow_alone():
    ultralytics = import_ultralytics()
    assert Image.open.__module__ == "PIL.Image"
    assert ultralytics.settings["sync"] is False
    start = time.monotonic()
    with pytest.raises(UnidentifiedImageError):
        Image.open(io.BytesIO(b"<html>not a photo</html>"))
    assert time.monotonic() - start < 1.0  # no plugin install attempted


def _python(code: str) -> str:
    env_code = "import os; os.environ['YOLO_OFFLINE'] = '1'\n" + code
    result = subprocess.run(
        [sys.executable, "-c", env_code], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip()


def test_pillow_open_bypasses_the_wrapper_when_ultralytics_came_first():
    out = _python(
        "import ultralytics\n"
        "from PIL import Image\n"
        "from deer_pipeline.compat.ultralytics import pillow_open\n"
        "print(Image.open.__module__, pillow_open().__module__)"
    )
    assert out == "ultralytics.utils.patches PIL.Image"


def test_ultralytics_still_replaces_image_open():
    """If this fails, ultralytics leaves Pillow alone: drop the restore and pillow_open."""
    out = _python("import ultralytics\nfrom PIL import Image\nprint(Image.open.__module__)")
    assert out == shim.PATCHES_MODULE


def test_ultralytics_dataset_check_still_fetches_a_font():
    """If this fails, the dataset check calls no check_font: drop the stub in offline_yolo."""
    import inspect

    import ultralytics.data.utils as data_utils

    assert "check_font(" in inspect.getsource(data_utils)


def test_written_for_the_installed_ultralytics():
    """If this fails, ultralytics moved: re-check compat/ultralytics.py, then WRITTEN_FOR."""
    assert compat.written_for(shim.WRITTEN_FOR), shim.WRITTEN_FOR
