"""A timm backbone as the re-ID model: its own size and preprocessing, strict loading, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from deer_pipeline.model_versions import MISSING, weights_version
from deer_pipeline.vision.backbones import parse_spec
from deer_pipeline.vision.decode import decode_file
from deer_pipeline.vision.embedder import Embedder, EmbedderConfig, EmbedderWeightsError, crop_boxes
from deer_pipeline.vision.runtime import file_version
from deer_pipeline.vision.untrained import save_untrained_timm

TINY = "vit_tiny_patch16_224"  # 192-d, mean and std 0.5, bicubic: unlike the ResNet50 in each


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    return str(save_untrained_timm(tmp_path_factory.mktemp("timm") / "tiny.pt", TINY, seed=1))


@pytest.fixture(scope="module")
def tiny(tiny_file):
    return Embedder(EmbedderConfig(weights=f"timm:{TINY}@{tiny_file}", device="cpu"))


def test_the_models_own_size_preprocessing_and_version(tiny, tiny_file):
    assert tiny.dim == 192 and tiny.weights_kind == "timm"
    assert tiny.preprocess.size == (224, 224) and tiny.preprocess.interpolation == "bicubic"
    assert tiny.preprocess.mean == (0.5, 0.5, 0.5) and tiny.preprocess.std == (0.5, 0.5, 0.5)
    assert tiny.model_version == f"timm-{TINY}-{file_version(tiny_file)}"
    assert weights_version(f"timm:{TINY}@{tiny_file}") == tiny.model_version
    assert weights_version(f"timm:{TINY}@/no/such/file.pt") == MISSING


def test_crops_go_through_the_data_config(tiny, synthetic_paths):
    """Batched embeddings equal a one-crop path written from timm's data config by hand."""
    image = decode_file(synthetic_paths[0], 640)
    boxes = np.array([[100, 80, 400, 300], [500, 200, 900, 700]], np.float32)
    got = tiny.embed([(image, boxes)])
    assert got.shape == (2, 192) and got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-4)
    pil = Image.fromarray(image.array)
    want = []
    for rect in crop_boxes(image, boxes, tiny.config.margin):
        x = TF.pil_to_tensor(pil.crop(tuple(int(v) for v in rect))).float()[None]
        x = torch.nn.functional.interpolate(x, (224, 224), mode="bicubic", antialias=True)
        x = TF.normalize(x.clamp(0, 255) / 255, [0.5] * 3, [0.5] * 3)
        with torch.inference_mode():
            want.append(torch.nn.functional.normalize(tiny.model(x), dim=1)[0].numpy())
    assert np.sum(got * np.array(want), axis=1).min() > 0.9999


def test_safetensors_and_hub_cache_load_without_network(tmp_path, tiny, monkeypatch):
    """A .safetensors checkpoint, and an hf-hub: repo already in the local cache (offline)."""
    import huggingface_hub.constants
    from timm.models._hub import save_for_hf

    safe = save_untrained_timm(tmp_path / "tiny.safetensors", TINY, seed=1)
    other = Embedder(EmbedderConfig(weights=f"timm:{TINY}@{safe}", device="cpu"))
    assert other.dim == 192 and other.model_version.endswith(file_version(safe))
    for a, b in zip(
        other.model.state_dict().values(), tiny.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)  # same seed, same weights, either format

    cache = tmp_path / "hub"
    snapshot = cache / "models--someone--tiny-reid" / "snapshots" / ("0" * 40)
    contiguous = other.model.to(memory_format=torch.contiguous_format)
    save_for_hf(contiguous, snapshot, safe_serialization=True)
    (cache / "models--someone--tiny-reid" / "refs").mkdir()
    (cache / "models--someone--tiny-reid" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert json.loads((snapshot / "config.json").read_text())["architecture"] == TINY
    hub = Embedder(EmbedderConfig(weights="hf-hub:someone/tiny-reid", device="cpu"))
    weights = snapshot / "model.safetensors"
    assert hub.dim == 192 and hub.model_version == f"hf-someone--tiny-reid-{file_version(weights)}"
    assert weights_version("hf-hub:someone/tiny-reid") == hub.model_version
    with pytest.raises(EmbedderWeightsError, match="cannot be downloaded"):
        Embedder(EmbedderConfig(weights="hf-hub:someone/not-cached", device="cpu"))
    assert weights_version("hf-hub:someone/not-cached") == MISSING


@pytest.mark.parametrize(
    "spec",
    ["timm:", "timm:@x.pt", f"timm:{TINY}@", "timm:a b", "hf-hub:", "hf-hub:no-owner", "tim:x"],
)
def test_malformed_specs(spec):
    with pytest.raises(EmbedderWeightsError, match="malformed re-ID spec"):
        parse_spec(spec)


def test_what_cannot_be_used_says_why(tmp_path, tiny_file):
    def load(spec):
        return Embedder(EmbedderConfig(weights=spec, device="cpu"))

    with pytest.raises(EmbedderWeightsError, match="checkpoint not found"):
        load(f"timm:{TINY}@{tmp_path / 'absent.pt'}")
    with pytest.raises(EmbedderWeightsError, match="does not know the model 'no_such_net'"):
        load("timm:no_such_net@x.pt")
    with pytest.raises(EmbedderWeightsError, match="does not fit timm:resnet18"):
        load(f"timm:resnet18@{tiny_file}")  # a ViT's weights for a ResNet
    with pytest.raises(EmbedderWeightsError, match="not in the local Hugging Face cache"):
        load(f"timm:{TINY}")  # timm's own weights are never downloaded by a timm: spec
    with pytest.raises(EmbedderWeightsError, match="4096-d vectors.*at most 4000"):
        load(f"timm:vgg11@{tiny_file}")  # refused before the weights are even read
