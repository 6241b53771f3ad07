"""CUDA checks of the vision stack (skipped without CUDA): fp16 vs fp32, channels-last, batch sizes.

Imports nothing beyond torch, torchvision, Pillow, numpy and ultralytics, so it runs on a bare GPU
box (scripts/gpu_check.sh) where Dagster and psycopg2 are not installed.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]
os.environ.setdefault("YOLO_OFFLINE", "1")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """The project's trained weights when present (untrained ones make NMS and fp16 twitchy)."""
    from deer_pipeline.config import DEFAULT_DETECTOR_WEIGHTS, DEFAULT_REID_WEIGHTS
    from deer_pipeline.vision.untrained import save_untrained_backbone, save_untrained_detector

    folder = tmp_path_factory.mktemp("cuda_weights")
    det, reid = DEFAULT_DETECTOR_WEIGHTS, DEFAULT_REID_WEIGHTS
    if not det.is_file():
        det = save_untrained_detector(folder / "det.pt")
    if not reid.is_file():
        reid = save_untrained_backbone(folder / "reid.pt")
    return str(det), str(reid)


@pytest.fixture(scope="module")
def image_paths(tmp_path_factory):
    from deer_workshop.synthetic import generate_dataset

    out = tmp_path_factory.mktemp("cuda_images")
    generate_dataset(out, images=16, locations=1, seed=5, width=1920, height=1080)
    return sorted(out.rglob("*.JPG"))


@pytest.fixture(scope="module")
def images(image_paths):
    from deer_pipeline.vision.decode import decode_file

    return [decode_file(p, 1280) for p in image_paths]


def _detector(path, **kw):
    from deer_pipeline.vision.detector import Detector, DetectorConfig

    # a few top boxes per image: the untrained model's dense boxes would make NMS flip on noise
    return Detector(DetectorConfig(path, conf=0.05, max_det=4, **kw))


def _embedder(path, **kw):
    from deer_pipeline.vision.embedder import Embedder, EmbedderConfig

    return Embedder(EmbedderConfig(path, **kw))


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def _matched(ref, other, min_iou: float, conf_tol: float, above: float) -> tuple[int, int]:
    """Count reference boxes scoring above ``above`` that ``other`` reproduces."""
    total = hit = 0
    for r, o in zip(ref, other, strict=True):
        for i in np.flatnonzero(r.confidence >= above):
            total += 1
            if not len(o):
                continue
            ious = _iou(r.boxes[i : i + 1], o.boxes)[0]
            j = int(ious.argmax())
            same = o.class_name[j] == r.class_name[i]
            hit += bool(
                ious[j] >= min_iou and same and abs(o.confidence[j] - r.confidence[i]) <= conf_tol
            )
    return hit, total


def test_fp16_detector_matches_fp32_and_cpu(weights, images):
    fp32 = _detector(weights[0], device="cuda", half=False).detect(images)
    fp16 = _detector(weights[0], device="cuda").detect(images)
    cpu = _detector(weights[0], device="cpu").detect(images[:4])
    hit, total = _matched(fp32, fp16, 0.95, 0.01, above=0.05)
    assert total >= 10 and hit >= 0.9 * total, (hit, total)
    hit, total = _matched(cpu, fp32[:4], 0.99, 1e-3, above=0.05)
    assert total >= 3 and hit >= 0.9 * total, (hit, total)


def test_detector_batch_sizes_agree(weights, images):
    one = _detector(weights[0], device="cuda", batch_size=1).detect(images)
    many = _detector(weights[0], device="cuda", batch_size=16).detect(images)
    hit, total = _matched(one, many, 0.98, 5e-3, above=0.05)
    assert total >= 10 and hit >= 0.9 * total, (hit, total)


@pytest.fixture(scope="module")
def crops(weights, images):
    det = _detector(weights[0], device="cuda").detect(images)
    emb = _embedder(weights[1], device="cuda")
    return torch.cat([emb.crops(im, d.boxes[:3]) for im, d in zip(images, det, strict=True)])


def test_embedder_fp16_matches_fp32_and_uses_channels_last(weights, crops):
    """fp16 autocast (the CUDA default) against fp32 on the same crops, which stay unchanged."""
    assert len(crops) >= 10
    fp16 = _embedder(weights[1], device="cuda")
    fp32 = _embedder(weights[1], device="cuda", precision="fp32")
    assert fp16.half and not fp32.half
    conv = fp16.model.conv1.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    before = crops.clone()
    cos = np.sum(fp16.embed_inputs(crops) * fp32.embed_inputs(crops), axis=1)
    assert torch.equal(crops, before)
    print("fp16 vs fp32 cosine quantiles", np.quantile(cos, [0, 0.05, 0.5]))
    assert cos.min() >= 0.999, cos.min()
    bf16 = _embedder(weights[1], device="cuda", precision="bf16")
    assert np.sum(bf16.embed_inputs(crops) * fp32.embed_inputs(crops), axis=1).min() >= 0.999


def test_gpu_boxes_match_ultralytics_predict(weights, images):
    """Device letterbox, fp16 forward and batched NMS against ``predict`` on the GPU."""
    from ultralytics import YOLO

    ours = _detector(weights[0], device="cuda", batch_size=16).detect(images)
    reference = YOLO(weights[0])
    total = 0
    for image, got in zip(images, ours, strict=True):
        boxes = reference.predict(
            image.array[..., ::-1],
            conf=0.05,
            max_det=4,
            agnostic_nms=True,
            half=True,
            device="cuda",
            verbose=False,
        )[0].boxes
        want = boxes.xyxy.cpu().numpy() * np.array([image.scale_x, image.scale_y] * 2)
        assert len(got) == len(want)
        total += len(got)
        if len(got):
            assert np.diag(_iou(got.boxes, want.astype(np.float32))).min() >= 0.99
            assert got.class_name == [reference.names[int(c)] for c in boxes.cls]
    assert total >= 10


def test_pipeline_embeddings_match_the_fp32_path(weights, image_paths):
    """The whole GPU path (uploaded pixels, device crops, fp16) against fp32 embeddings."""
    from deer_pipeline.vision.pipeline import InferencePipeline, PipelineConfig

    det = _detector(weights[0], device="cuda", batch_size=8)
    emb = _embedder(weights[1], device="cuda")
    paths = image_paths
    pipe = InferencePipeline(det, emb, PipelineConfig(batch_size=8))
    batches = list(pipe.run(list(enumerate(paths))))
    got = np.concatenate([b.embeddings for b in batches])
    from deer_pipeline.vision.decode import decode_file

    frames = [decode_file(p, pipe.decode_long_side) for p in paths]
    dets = det.detect(frames)
    fp32 = _embedder(weights[1], device="cuda", precision="fp32")
    want = fp32.embed([(f, d.boxes) for f, d in zip(frames, dets, strict=True)])
    assert got.shape == want.shape and len(got) >= 10
    assert np.sum(got * want, axis=1).min() >= 0.999


def test_embedder_batch_sizes_and_cpu_agree(weights, crops):
    big = _embedder(weights[1], device="cuda", batch_size=64).embed_inputs(crops)
    one = _embedder(weights[1], device="cuda", batch_size=1).embed_inputs(crops[:8])
    assert np.sum(big[:8] * one, axis=1).min() >= 0.9999
    conv = _embedder(weights[1], device="cuda").model.conv1.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    fp32 = _embedder(weights[1], device="cuda").embed_inputs(crops[:4])
    cpu = _embedder(weights[1], device="cpu").embed_inputs(crops[:4].cpu())
    assert np.sum(fp32 * cpu, axis=1).min() >= 0.9999


def test_pipeline_streams_on_cuda(weights, tmp_path):
    from PIL import Image

    from deer_pipeline.vision.pipeline import InferencePipeline, PipelineConfig

    det = _detector(weights[0], device="cuda", batch_size=8)
    emb = _embedder(weights[1], device="cuda", batch_size=32)
    paths = []
    for i in range(20):
        p = tmp_path / f"{i}.jpg"
        rng = np.random.default_rng(i)
        Image.fromarray(rng.integers(0, 255, (270, 480, 3), dtype=np.uint8)).resize(
            (1920, 1080)
        ).save(p)
        paths.append(p)
    pipe = InferencePipeline(det, emb, PipelineConfig(batch_size=8, embeddings_dtype="float16"))
    batches = list(pipe.run(list(enumerate(paths))))
    assert sum(len(b.image_ids) for b in batches) == 20
    rows = sum(len(b.class_name) for b in batches)
    assert rows == sum(len(b.embeddings) for b in batches) == pipe.times.detections
    assert all(b.embeddings.dtype == np.float16 for b in batches)
