"""Vision fixtures: untrained weights made on the fly, a few synthetic and real photos."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from deer_pipeline_tests.conftest import SHARED_DATA, require_shared

os.environ.setdefault("YOLO_OFFLINE", "1")

# The untrained detector's scores sit around 0.05-0.45 and vary from image to image: a low
# threshold and a cap keep a few boxes on every image.
TEST_CONF = 0.05
TEST_MAX_DET = 4


@pytest.fixture(scope="session")
def detector_weights(tmp_path_factory) -> str:
    from deer_pipeline.vision.untrained import save_untrained_detector

    return str(save_untrained_detector(tmp_path_factory.mktemp("weights") / "det.pt", seed=0))


@pytest.fixture(scope="session")
def backbone_weights(tmp_path_factory) -> str:
    from deer_pipeline.vision.untrained import save_untrained_backbone

    return str(save_untrained_backbone(tmp_path_factory.mktemp("weights") / "reid.pt", seed=0))


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory) -> Path:
    from deer_workshop.synthetic import generate_dataset

    out = tmp_path_factory.mktemp("synthetic")
    generate_dataset(out, images=8, locations=1, seed=3, width=1920, height=1080, workers=2)
    return out


@pytest.fixture(scope="session")
def synthetic_paths(synthetic_dir) -> list[Path]:
    return sorted(synthetic_dir.rglob("*.JPG"))


@pytest.fixture(scope="session")
def real_paths() -> list[Path]:
    paths = sorted(require_shared(SHARED_DATA / "southwest").glob("*.JPG"))
    if not paths:
        pytest.fail(f"real camera-trap photos not found under {SHARED_DATA}")
    return paths


@pytest.fixture(scope="session")
def detector(detector_weights):
    from deer_pipeline.vision.detector import Detector, DetectorConfig

    cfg = DetectorConfig(
        detector_weights, conf=TEST_CONF, max_det=TEST_MAX_DET, device="cpu", batch_size=4
    )
    return Detector(cfg)


@pytest.fixture(scope="session")
def embedder(backbone_weights):
    from deer_pipeline.vision.embedder import Embedder, EmbedderConfig

    return Embedder(EmbedderConfig(backbone_weights, device="cpu", batch_size=8))
