import io
import time

import pytest
from PIL import Image, UnidentifiedImageError

from deer_pipeline.vision.offline import import_ultralytics


def test_ultralytics_import_leaves_pillow_alone():
    ultralytics = import_ultralytics()
    assert Image.open.__module__ == "PIL.Image"
    assert ultralytics.settings["sync"] is False
    start = time.monotonic()
    with pytest.raises(UnidentifiedImageError):
        Image.open(io.BytesIO(b"<html>not a photo</html>"))
    assert time.monotonic() - start < 1.0  # no plugin install attempted
