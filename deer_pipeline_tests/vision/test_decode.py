"""Decoding: reduced-size JPEG decode, EXIF orientation, full-size geometry, failures."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from deer_pipeline.vision.decode import DecodeError, decode_bytes, decode_file


def _jpeg(width: int, height: int, orientation: int = 1, quality: int = 92) -> bytes:
    """A JPEG with an asymmetric pattern (a wrong rotation shows) and an orientation tag."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // width, y * 255 // height, ((x < width // 3) * 200)], -1)
    im = Image.fromarray(rgb.astype(np.uint8))
    exif = Image.Exif()
    exif[274] = orientation
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality, exif=exif.tobytes())
    return buf.getvalue()


def test_draft_decodes_no_smaller_than_asked_and_keeps_the_scale():
    data = _jpeg(1920, 1080)
    full = decode_bytes(data)
    assert full.array.shape == (1080, 1920, 3) and not full.reduced
    small = decode_bytes(data, min_long_side=640)
    assert small.array.shape == (540, 960, 3)  # 1/2 is the smallest DCT scale >= 640 x 360
    assert (small.width, small.height, small.scale_x, small.scale_y) == (1920, 1080, 2.0, 2.0)
    assert decode_bytes(data, min_long_side=4000).array.shape == (1080, 1920, 3)  # never enlarged
    # the reduced decode is a faithful downscale of the full one
    ref = np.asarray(Image.fromarray(full.array).resize((960, 540), Image.BOX), np.float32)
    assert np.abs(ref - small.array).mean() < 3.0


@pytest.mark.parametrize("orientation", [1, 2, 3, 4, 5, 6, 7, 8])
def test_exif_orientation_gives_upright_pixels_and_size(orientation):
    data = _jpeg(640, 480, orientation)
    out = decode_bytes(data, min_long_side=320)
    upright = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    assert (out.height, out.width) == upright.shape[:2]
    assert out.array.shape[:2] == (upright.shape[0] // 2, upright.shape[1] // 2)
    ref = np.asarray(Image.fromarray(upright).resize(out.array.shape[1::-1], Image.BOX), np.float32)
    assert np.abs(ref - out.array).mean() < 4.0


def test_real_photos_decode_reduced_including_mpo(real_paths):
    for path in real_paths[:6]:
        out = decode_file(path, min_long_side=640)
        full_w, full_h = Image.open(path).size
        assert (out.width, out.height) == (full_w, full_h)
        assert 640 <= max(out.array.shape[:2]) < 2 * 640 + 8  # the smallest DCT scale that fits
        assert out.array.dtype == np.uint8 and out.array.shape[2] == 3


def test_failures_raise_with_a_reason(tmp_path):
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(_jpeg(320, 240)[:600])
    (tmp_path / "text.jpg").write_text("not an image")
    (tmp_path / "empty.jpg").write_bytes(b"")
    cases = {
        "truncated.jpg": "cannot decode",
        "text.jpg": "cannot decode",
        "empty.jpg": "empty file",
        "missing.jpg": "cannot read",
    }
    for name, words in cases.items():
        with pytest.raises(DecodeError) as info:
            decode_file(tmp_path / name, 160)
        assert words in info.value.reason and info.value.path.endswith(name)


def test_non_jpeg_and_grayscale_decode_at_full_size(tmp_path):
    png = tmp_path / "a.png"
    Image.new("L", (300, 200), 77).save(png)
    out = decode_file(png, 64)
    assert out.array.shape == (200, 300, 3) and out.scale_x == 1.0 and out.array[0, 0, 0] == 77
