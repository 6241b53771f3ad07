"""The re-ID model's projection: read from the weights file, applied before storing, versioned."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deer_pipeline.config import DEFAULT_REID_WEIGHTS
from deer_pipeline.vision.embedder import Embedder, EmbedderConfig, EmbedderWeightsError
from deer_pipeline.vision.projection import Projection, projection_state


@pytest.fixture(scope="module")
def images(real_paths, synthetic_paths):
    from deer_pipeline.vision.decode import decode_file

    out = []
    for path in (real_paths[0], synthetic_paths[0]):
        image = decode_file(path, 640)
        w, h = image.width, image.height
        boxes = np.array([[0, 0, w / 2, h / 2], [w / 3, h / 4, w, h], [10, 20, 200, 180]])
        out.append((image, boxes.astype(np.float32)))
    return out


def _with_projection(tmp_path, backbone_weights, mean, weight, name="projected.pt") -> str:
    state = torch.load(backbone_weights, weights_only=True)
    path = tmp_path / name
    torch.save(state | projection_state(mean, weight), path)
    return str(path)


def test_projection_is_applied_after_the_backbone(tmp_path, backbone_weights, embedder, images):
    gen = torch.Generator().manual_seed(0)
    mean = torch.randn(2048, generator=gen) * 0.01
    weight = torch.eye(2048) + 0.05 * torch.randn(2048, 2048, generator=gen)
    path = _with_projection(tmp_path, backbone_weights, mean, weight)
    projected = Embedder(EmbedderConfig(path, device="cpu", batch_size=8))
    assert isinstance(projected.model.fc, Projection)
    assert isinstance(embedder.model.fc, torch.nn.Identity)  # a plain state_dict: no projection

    plain = embedder.embed(images)
    got = projected.embed(images)
    assert got.shape == (6, 2048) and got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(projected.embed(images), got)  # deterministic
    # exactly normalize(W (x - mean)) of the backbone's unit vector x, with the fp16-stored map
    w16, m16 = weight.half().float().numpy(), mean.half().float().numpy()
    want = (plain - m16) @ w16.T
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert np.sum(got * plain, axis=1).max() < 0.99  # the map changes the vectors

    # the model version is the file's hash: the projection makes it another model
    assert projected.model_version != embedder.model_version


def test_identity_projection_gives_the_backbone_output(
    tmp_path, backbone_weights, embedder, images
):
    path = _with_projection(tmp_path, backbone_weights, torch.zeros(2048), torch.eye(2048))
    same = Embedder(EmbedderConfig(path, device="cpu", batch_size=8))
    np.testing.assert_allclose(same.embed(images), embedder.embed(images), atol=1e-5)


def test_broken_projection_is_a_clear_error(tmp_path, backbone_weights):
    state = torch.load(backbone_weights, weights_only=True)
    torch.save(state | {"projection.mean": torch.zeros(2048)}, tmp_path / "half.pt")
    with pytest.raises(EmbedderWeightsError, match="projection needs exactly"):
        Embedder(EmbedderConfig(str(tmp_path / "half.pt"), device="cpu"))
    bad = projection_state(torch.zeros(1024), torch.eye(2048))
    torch.save(state | bad, tmp_path / "shape.pt")
    with pytest.raises(EmbedderWeightsError, match="projection shapes do not fit"):
        Embedder(EmbedderConfig(str(tmp_path / "shape.pt"), device="cpu"))


def test_fp16_projection_matches_fp32():
    gen = torch.Generator().manual_seed(1)
    x = torch.nn.functional.normalize(torch.randn(64, 2048, generator=gen) + 3, dim=1)
    mean = x.mean(0)
    weight = torch.eye(2048) + 0.02 * torch.randn(2048, 2048, generator=gen)
    full = Projection(mean, weight)(x)
    half = Projection(mean.half(), weight.half())(x)
    assert torch.sum(full * half, dim=1).min() > 0.9999


def test_the_committed_model_carries_its_projection():
    state = torch.load(DEFAULT_REID_WEIGHTS, weights_only=True)
    assert state["projection.mean"].shape == (2048,)
    assert state["projection.weight"].shape == (2048, 2048)
    assert state["projection.weight"].dtype == torch.float16
