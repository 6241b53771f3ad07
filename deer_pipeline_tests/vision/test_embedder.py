"""Embedder: batched crops equal a plain one-crop-at-a-time torchvision path; weight loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from deer_pipeline.vision.decode import decode_file
from deer_pipeline.vision.embedder import (
    CPU_BATCH,
    Embedder,
    EmbedderConfig,
    EmbedderWeightsError,
    crop_boxes,
)


@pytest.fixture(scope="module")
def items(real_paths, synthetic_paths):
    """Two images (one real, full size; one synthetic, reduced) with small, mid and large boxes."""
    rng = np.random.default_rng(0)
    out = []
    for path, side in ((real_paths[0], None), (synthetic_paths[0], 640)):
        image = decode_file(path, side)
        w, h = image.width, image.height
        boxes = []
        for size in (40, 300, 900):
            x, y = rng.uniform(0, w - 1.3 * size), rng.uniform(0, h - size)
            boxes.append([x, y, x + 1.3 * size, y + size])
        boxes.append([w - 50.5, h - 80.25, w + 30, h + 10])  # sticks out: clipped
        out.append((image, np.array(boxes, np.float32)))
    return out


def _reference(model: torch.nn.Module, image, boxes, margin: float) -> np.ndarray:
    """One crop at a time: PIL crop, torchvision resize (antialias) and normalise, fp32 model."""
    pil = Image.fromarray(image.array)
    rows = []
    for rect in crop_boxes(image, boxes, margin):
        x = TF.pil_to_tensor(pil.crop(tuple(int(v) for v in rect))).float()
        x = TF.resize(x, [224, 224], antialias=True) / 255
        x = TF.normalize(x, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
        with torch.inference_mode():
            rows.append(torch.nn.functional.normalize(model(x[None]), dim=1)[0].numpy())
    return np.array(rows)


def test_batched_embeddings_equal_one_crop_at_a_time(embedder, items):
    got = embedder.embed(items)
    assert got.shape == (8, 2048) and got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-4)
    model = embedder.model.to(memory_format=torch.contiguous_format)
    try:
        want = np.concatenate([_reference(model, im, b, embedder.config.margin) for im, b in items])
    finally:
        embedder.model.to(memory_format=torch.channels_last)
    same = np.sum(got * want, axis=1)
    assert same.min() >= 0.999, same
    # the threshold means something even for this untrained backbone: unrelated crops typically
    # sit further apart than that (a trained re-ID model separates them far more)
    cross = got @ want.T
    assert np.median(cross[~np.eye(len(got), dtype=bool)]) < 0.998


def test_crop_rectangles_are_whole_pixels_inside_the_array(items):
    image, boxes = items[1]
    rects = crop_boxes(image, boxes, 0.05)
    h, w = image.array.shape[:2]
    assert rects.dtype == np.int64
    assert np.all(rects[:, :2] >= 0) and np.all(rects[:, 2] <= w) and np.all(rects[:, 3] <= h)
    assert np.all(rects[:, 2:] > rects[:, :2])
    # the 300 px box (full size) is 150 px in the half-size array, plus 5% on each side
    assert abs((rects[1, 2] - rects[1, 0]) - 1.1 * 1.3 * 300 / image.scale_x) <= 2


def test_state_dict_variants_load_the_same(tmp_path, backbone_weights, embedder, items):
    state = torch.load(backbone_weights, weights_only=True)
    variants = {
        "with_fc.pt": {**state, "fc.weight": torch.zeros(10, 2048), "fc.bias": torch.zeros(10)},
        "wrapped.pt": {"state_dict": {f"module.{k}": v.float() for k, v in state.items()}},
    }
    want = embedder.embed(items[:1])
    for name, content in variants.items():
        torch.save(content, tmp_path / name)
        other = Embedder(EmbedderConfig(str(tmp_path / name), device="cpu"))
        assert other.weights_kind == "state_dict" and other.warning is None
        np.testing.assert_allclose(other.embed(items[:1]), want, atol=2e-3)


def test_bad_weights_are_clear_errors(tmp_path):
    with pytest.raises(EmbedderWeightsError, match="not found"):
        Embedder(EmbedderConfig(str(tmp_path / "missing.pt"), device="cpu"))
    torch.save({"conv1.weight": torch.zeros(3)}, tmp_path / "partial.pt")
    with pytest.raises(EmbedderWeightsError, match="not a ResNet50 state_dict"):
        Embedder(EmbedderConfig(str(tmp_path / "partial.pt"), device="cpu"))
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(EmbedderWeightsError, match="cannot read"):
        Embedder(EmbedderConfig(str(tmp_path / "junk.pt"), device="cpu"))


def test_random_weights_warn_and_say_so(caplog):
    with caplog.at_level("WARNING"):
        emb = Embedder(EmbedderConfig("random", device="cpu", seed=7))
    assert emb.weights_kind == "random" and emb.model_version == "random-7"
    assert "random" in emb.warning and "random" in caplog.text
    assert emb.batch_size == CPU_BATCH  # the CPU default (64 would be slower and larger)
    assert Embedder(EmbedderConfig("random", device="cpu", batch_size=5)).batch_size == 5


def test_imagenet_offline_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # empty cache
    monkeypatch.setattr(torch.hub, "_get_torch_home", lambda: str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(EmbedderWeightsError, match="cannot be downloaded"):
        Embedder(EmbedderConfig("imagenet", device="cpu"))


def test_embed_inputs_leaves_its_input_alone(embedder, items):
    """The cosine-0.3 "fp16 loss": embed_inputs normalised a float32 input in place, so the second
    embedding of the same crops (the fp32 reference) saw them normalised twice."""
    crops = torch.cat([embedder.crops(im, b) for im, b in items])
    before = crops.clone()
    first = embedder.embed_inputs(crops)
    assert torch.equal(crops, before)
    np.testing.assert_array_equal(embedder.embed_inputs(crops), first)
    half = embedder.embed_inputs(crops, dtype="float16")
    assert half.dtype == np.float16
    np.testing.assert_allclose(half, first, atol=1e-3)


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_reduced_precision_matches_fp32_with_the_committed_backbone(precision, items):
    """The same autocast path CUDA runs by default, on this CPU: the trained backbone holds."""
    from deer_pipeline.config import DEFAULT_REID_WEIGHTS

    fp32 = Embedder(EmbedderConfig(str(DEFAULT_REID_WEIGHTS), device="cpu", precision="fp32"))
    low = Embedder(EmbedderConfig(str(DEFAULT_REID_WEIGHTS), device="cpu", precision=precision))
    assert low.half and not fp32.half
    crops = torch.cat([fp32.crops(im, b) for im, b in items])
    want = fp32.embed_inputs(crops)
    got = low.embed_inputs(crops)
    assert np.sum(got * want, axis=1).min() >= 0.999
    with pytest.raises(ValueError, match="precision"):
        Embedder(EmbedderConfig("random", device="cpu", precision="fp8"))
