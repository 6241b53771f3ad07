"""Detector: the batched path equals ultralytics' own predict, image by image, on the same pixels.

Compared like with like: both sides get the same decoded (reduced, upright) array; ultralytics'
boxes are mapped to full-size pixels with the same scale. That drafting itself loses no recall is a
separate question (see test_pipeline.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from deer_pipeline.vision.decode import decode_file
from deer_pipeline.vision.detector import Detector, DetectorConfig
from deer_pipeline_tests.vision.conftest import TEST_CONF, TEST_MAX_DET


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


@pytest.fixture(scope="module")
def images(real_paths, synthetic_paths):
    paths = real_paths[:3] + synthetic_paths[:3]
    return [decode_file(p, 640) for p in paths]


def test_batched_boxes_equal_ultralytics_predict(detector, detector_weights, images):
    from ultralytics import YOLO

    ours = detector.detect(images)  # batch 4, mixed letterbox shapes
    reference = YOLO(detector_weights)
    total = 0
    for image, got in zip(images, ours, strict=True):
        res = reference.predict(
            image.array[..., ::-1],
            conf=TEST_CONF,
            max_det=TEST_MAX_DET,
            verbose=False,
            device="cpu",
        )
        boxes = res[0].boxes
        want = boxes.xyxy.numpy() * np.array([image.scale_x, image.scale_y] * 2)
        want_names = [reference.names[int(c)] for c in boxes.cls]
        assert len(got) == len(want)
        total += len(got)
        if not len(got):
            continue
        ious = iou_matrix(got.boxes, want.astype(np.float32))
        assert np.diag(ious).min() >= 0.99
        assert got.class_name == want_names
        assert np.abs(got.confidence - boxes.conf.numpy()).max() <= 1e-3
    assert total >= 2 * len(images), "the untrained test detector should find a few boxes"


def test_boxes_are_full_size_sorted_and_clipped(detector, images):
    for image, det in zip(images, detector.detect(images), strict=True):
        assert det.boxes.dtype == np.float32 and det.boxes.shape == (len(det), 4)
        assert np.all(np.diff(det.confidence) <= 0)
        assert np.all(det.boxes[:, :2] >= 0) and np.all(det.boxes[:, :2] <= det.boxes[:, 2:])
        assert np.all(det.boxes[:, 2] <= image.width) and np.all(det.boxes[:, 3] <= image.height)
        assert np.all(det.confidence >= TEST_CONF)


def test_class_map_renames_and_drops(detector_weights, images):
    # no max_det cap here: dropping a class must leave exactly the other classes' boxes
    plain = Detector(DetectorConfig(detector_weights, conf=0.2, device="cpu"))
    mapped = Detector(
        DetectorConfig(
            detector_weights,
            class_map={"doe": "deer", "fawn": "deer", "buck": None},
            conf=0.2,
            device="cpu",
        )
    )
    assert mapped.model_version == plain.model_version
    dropped = 0
    for want, got in zip(plain.detect(images[:3]), mapped.detect(images[:3]), strict=True):
        keep = [i for i, c in enumerate(want.class_name) if c != "buck"]
        dropped += len(want) - len(keep)
        assert set(got.class_name) <= {"deer"} and len(got) == len(keep)
        np.testing.assert_allclose(got.boxes, want.boxes[keep], atol=1e-3)
    assert dropped > 0


def test_missing_weights_and_bad_device(tmp_path, detector_weights):
    from deer_pipeline.vision.runtime import DeviceError

    with pytest.raises(FileNotFoundError):
        Detector(DetectorConfig(str(tmp_path / "nope.pt")))
    with pytest.raises(DeviceError):
        Detector(DetectorConfig(detector_weights, device="gpu0"))
