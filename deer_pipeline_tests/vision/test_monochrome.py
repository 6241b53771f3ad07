"""Infrared (monochrome) boxes are told from colour ones on the decoded pixels."""

import numpy as np

from deer_pipeline.vision.monochrome import MONOCHROME_CHROMA, box_chroma, is_monochrome


def frame() -> np.ndarray:
    """A 100x200 frame: a grey left half (with noise, as an infrared JPEG) and a brown right."""
    rng = np.random.default_rng(0)
    out = np.zeros((100, 200, 3), np.uint8)
    grey = rng.integers(40, 200, size=(100, 100), dtype=np.uint8)
    out[:, :100] = grey[:, :, None]
    out[:, 100:] = (120, 80, 40)
    return out


def test_grey_box_is_monochrome_and_brown_box_is_not():
    boxes = np.array([[10, 10, 90, 90], [110, 10, 190, 90]], np.float32)
    assert is_monochrome(frame(), boxes).tolist() == [True, False]
    assert box_chroma(frame(), boxes[0]) == 0.0
    assert box_chroma(frame(), boxes[1]) == 80.0 > MONOCHROME_CHROMA


def test_boxes_in_full_size_pixels_are_scaled_to_a_reduced_decode():
    # The frame decoded at half size: a full-size box over the right half lands on brown.
    boxes = np.array([[220, 20, 380, 180]], np.float32)
    assert is_monochrome(frame(), boxes, 2.0, 2.0).tolist() == [False]
    assert is_monochrome(frame(), boxes, 1.0, 1.0).tolist() == [False]  # clipped to the frame
    assert is_monochrome(frame()[:, :100], boxes, 2.0, 2.0).tolist() == [True]  # empty: all


def test_a_faint_tint_still_counts_as_monochrome():
    tinted = np.full((50, 50, 3), 100, np.uint8)
    tinted[..., 2] += 3  # a faint purple cast of some infrared cameras
    assert is_monochrome(tinted, np.array([[0, 0, 50, 50]], np.float32)).tolist() == [True]
