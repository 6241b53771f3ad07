"""Streaming pass: same results as direct calls, failures kept, bounded reading, clean stop."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from PIL import Image

from deer_pipeline.config import DEFAULT_DETECTOR_WEIGHTS
from deer_pipeline.vision.decode import decode_file
from deer_pipeline.vision.pipeline import InferencePipeline, PipelineConfig
from deer_pipeline_tests.vision.test_detector import iou_matrix


def test_results_equal_direct_calls_and_failures_are_reported(
    detector, embedder, synthetic_paths, tmp_path
):
    bad = tmp_path / "bad.JPG"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    paths = synthetic_paths[:5] + [bad, tmp_path / "gone.JPG"] + synthetic_paths[5:7]
    records = [(100 + i, p) for i, p in enumerate(paths)]
    cfg = PipelineConfig(batch_size=4, decode_workers=2, decode_long_side=960)
    pipe = InferencePipeline(detector, embedder, cfg)
    batches = list(pipe.run(records))

    assert [len(b.image_ids) + len(b.failures) for b in batches] == [4, 4, 1]
    assert [i for b in batches for i in b.image_ids] == [100, 101, 102, 103, 104, 107, 108]
    failures = dict(f for b in batches for f in b.failures)
    assert set(failures) == {105, 106}
    assert "cannot decode" in failures[105] and "cannot read" in failures[106]

    images = [decode_file(p, 960) for p in synthetic_paths[:7]]
    direct = detector.detect(images)
    want_emb = embedder.embed([(im, d.boxes) for im, d in zip(images, direct, strict=True)])
    got_boxes = np.concatenate([b.boxes for b in batches])
    got_emb = np.concatenate([b.embeddings for b in batches])
    np.testing.assert_allclose(got_boxes, np.concatenate([d.boxes for d in direct]), atol=0.02)
    assert np.sum(got_emb * want_emb, axis=1).min() > 0.9999
    for b in batches:
        assert len(b.det_image_id) == len(b.class_name) == len(b.confidence) == len(b.embeddings)
        for image_id in b.image_ids:
            ranks = b.det_index[b.det_image_id == image_id]
            assert list(ranks) == list(range(len(ranks)))
            assert b.sizes[image_id] == (1920, 1080)
    t = pipe.times
    assert (t.images, t.failed, t.detections) == (7, 2, len(got_boxes)) and len(got_boxes) > 0
    assert t.decode_s > 0 and t.detect_s > 0 and t.embed_s > 0 and t.images_per_s > 0


def test_reads_ahead_boundedly_and_stops_cleanly(detector, tmp_path):
    path = tmp_path / "small.jpg"
    Image.new("RGB", (320, 240), (90, 120, 60)).save(path)
    pulled = []

    def records():
        for i in range(400):
            pulled.append(i)
            yield i, path

    cfg = PipelineConfig(batch_size=4, decode_workers=2, prefetch_batches=1)
    pipe = InferencePipeline(detector, None, cfg)
    stream = pipe.run(records())
    first = next(stream)
    assert first.embeddings is None and len(first.image_ids) == 4
    assert len(pulled) <= 4 * (1 + 1) + 2 * 4  # read-ahead depth plus the batches in flight
    stream.close()
    names = [t.name for t in threading.enumerate()]
    assert not any(n.startswith(("deer-infer", "deer-decode")) for n in names)
    assert len(pulled) < 40


def test_errors_in_the_inference_thread_reach_the_caller(detector):
    with pytest.raises(ValueError):
        list(InferencePipeline(detector).run([(1,)]))  # not an (id, path) pair


def test_reduced_decode_loses_no_recall(synthetic_dir):
    """With the trained demo detector: recall at IoU 0.5 against ground truth, draft vs full."""
    from deer_pipeline.vision.detector import Detector, DetectorConfig

    truth = json.loads((synthetic_dir / "ground_truth.json").read_text())["images"]
    det = Detector(DetectorConfig(str(DEFAULT_DETECTOR_WEIGHTS), device="cpu"))
    recall = {}
    for side in (None, 640):
        found = total = 0
        for entry in truth:
            want = np.array([b["bbox"] for b in entry["boxes"]], np.float32).reshape(-1, 4)
            image = decode_file(synthetic_dir / entry["file"], side)
            got = det.detect([image])[0].boxes
            assert (got >= 0).all() and (got[:, [0, 2]] <= image.width).all()
            assert (got[:, [1, 3]] <= image.height).all()
            total += len(want)
            if len(want) and len(got):
                found += int((iou_matrix(want, got).max(axis=1) >= 0.5).sum())
        recall[side] = found / max(total, 1)
    assert recall[640] >= recall[None] - 0.05, recall
    assert recall[640] >= 0.9, recall  # the goal for the demo detector
