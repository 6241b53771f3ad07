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
from deer_pipeline_tests.vision.conftest import TEST_CONF


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


def test_batched_boxes_equal_ultralytics_predict(synthetic_paths):
    """The committed detector, letterboxed on the device, against ``predict`` (OpenCV letterbox).

    The two resizes differ by rounding (at most one grey level): a trained detector gives the same
    boxes; the untrained test detector's near-noise boxes would flip on it.
    """
    from ultralytics import YOLO

    from deer_pipeline.config import DEFAULT_DETECTOR_WEIGHTS

    weights = str(DEFAULT_DETECTOR_WEIGHTS)
    frames = [decode_file(p, 640) for p in synthetic_paths]
    fp32 = DetectorConfig(weights, device="cpu", batch_size=4, precision="fp32")  # as predict
    ours = Detector(fp32).detect(frames)
    reference = YOLO(weights)
    total = 0
    for image, got in zip(frames, ours, strict=True):
        res = reference.predict(
            image.array[..., ::-1],
            agnostic_nms=True,  # the detector's default: one box per animal
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
        assert np.abs(got.confidence - boxes.conf.numpy()).max() <= 0.01
    assert total >= len(frames) // 2, "the committed detector finds the synthetic deer"


def test_boxes_are_full_size_sorted_and_clipped(detector, images):
    for image, det in zip(images, detector.detect(images), strict=True):
        assert det.boxes.dtype == np.float32 and det.boxes.shape == (len(det), 4)
        assert np.all(np.diff(det.confidence) <= 0)
        assert np.all(det.boxes[:, :2] >= 0) and np.all(det.boxes[:, :2] <= det.boxes[:, 2:])
        assert np.all(det.boxes[:, 2] <= image.width) and np.all(det.boxes[:, 3] <= image.height)
        assert np.all(det.confidence >= TEST_CONF)


def test_class_scores_are_the_kept_boxes_scores_per_class(detector, images):
    boxes = 0
    for det in detector.detect(images):
        assert len(det.class_scores) == len(det)
        for name, conf, scores in zip(
            det.class_name, det.confidence, det.class_scores, strict=True
        ):
            boxes += 1
            assert set(scores) == {"doe", "fawn", "buck"}
            assert all(0.0 <= v <= 1.0 for v in scores.values())
            # the stored class is the argmax, its score the confidence; the others are lower
            assert max(scores, key=scores.get) == name
            assert scores[name] == pytest.approx(float(conf), abs=1e-4)
            assert sum(scores.values()) <= 3.0 and sum(scores.values()) >= conf
    assert boxes >= 2 * len(images)


def test_agnostic_nms_keeps_one_box_per_place(detector_weights, images):
    """Per-class NMS lets boxes of different classes overlap; the default agnostic NMS does not."""
    per_class = Detector(DetectorConfig(detector_weights, conf=0.05, device="cpu", agnostic=False))
    agnostic = Detector(DetectorConfig(detector_weights, conf=0.05, device="cpu"))
    overlapping = 0

    def unclipped(det, image):  # NMS sees boxes before clipping: keep those clipping left alone
        inside = np.all(det.boxes[:, :2] > 0, 1) & (det.boxes[:, 2] < image.width)
        return det.boxes[inside & (det.boxes[:, 3] < image.height)]

    per_image = zip(images, per_class.detect(images), agnostic.detect(images), strict=True)
    for image, a, b in per_image:
        a, b = unclipped(a, image), unclipped(b, image)
        overlapping += int(np.sum(np.triu(iou_matrix(a, a) >= 0.7, 1)))
        assert not np.any(np.triu(iou_matrix(b, b) >= 0.7, 1))
    assert overlapping > 0


def test_class_map_renames_and_drops(detector_weights, images):
    """Dropped classes are filtered before NMS (as ``predict(classes=...)``): they suppress none."""

    def load(class_map):
        return Detector(DetectorConfig(detector_weights, class_map, conf=0.2, device="cpu"))

    plain = load(None)
    no_buck = load({"doe": "doe", "fawn": "fawn"})  # a class missing from a map is dropped
    mapped = load({"doe": "deer", "fawn": "deer", "buck": None})
    assert mapped.model_version == plain.model_version
    dropped = 0
    for all_, want, got in zip(
        plain.detect(images[:3]), no_buck.detect(images[:3]), mapped.detect(images[:3]), strict=True
    ):
        dropped += all_.class_name.count("buck")
        assert "buck" not in want.class_name
        assert got.class_name == ["deer"] * len(want)
        np.testing.assert_allclose(got.boxes, want.boxes, atol=1e-3)
        for scores, want_scores in zip(got.class_scores, want.class_scores, strict=True):
            assert set(want_scores) == {"doe", "fawn"}
            assert scores == {"deer": max(want_scores.values())}
    assert dropped > 0


def test_missing_weights_and_bad_device(tmp_path, detector_weights):
    from deer_pipeline.vision.runtime import DeviceError

    with pytest.raises(FileNotFoundError):
        Detector(DetectorConfig(str(tmp_path / "nope.pt")))
    with pytest.raises(DeviceError):
        Detector(DetectorConfig(detector_weights, device="gpu0"))


def test_one_box_per_animal_on_the_demo_world(tmp_path_factory):
    """The committed detector on a demo-like world (seed 7, as ``run``'s demo): no two boxes of one
    image at IoU >= 0.7, where per-class NMS leaves such pairs (issue 12's phantom deer)."""
    from deer_pipeline.config import DEFAULT_DETECTOR_WEIGHTS
    from deer_workshop.synthetic import generate_dataset

    out = tmp_path_factory.mktemp("demo_world")
    generate_dataset(out, images=48, locations=3, seed=7, workers=2)
    frames = [decode_file(p, 640) for p in sorted(out.rglob("*.JPG"))]
    weights = str(DEFAULT_DETECTOR_WEIGHTS)
    agnostic = Detector(DetectorConfig(weights, device="cpu")).detect(frames)
    per_class = Detector(DetectorConfig(weights, device="cpu", agnostic=False)).detect(frames)

    def pairs(dets):
        return sum(int(np.sum(np.triu(iou_matrix(d.boxes, d.boxes) >= 0.7, 1))) for d in dets)

    assert sum(len(d) for d in agnostic) >= 40
    assert pairs(agnostic) == 0
    assert pairs(per_class) > 0
