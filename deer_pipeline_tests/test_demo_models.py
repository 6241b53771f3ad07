"""The bundled demo models on real photos: one warning line and metadata; none on the synthetic
world (real ``deer-pipeline run`` processes, real photos, the real demo weights)."""

import os
import shutil
import subprocess
import sys

import dagster as dg
import pytest

from deer_pipeline.config import DEFAULT_DETECTOR_WEIGHTS, DEFAULT_REID_WEIGHTS
from deer_pipeline.demo_models import demo_model_warning, is_synthetic_world

SELECT = "key:raw_images or key:detections or key:embeddings"


@pytest.fixture(scope="module")
def synthetic_world(tmp_path_factory):
    from deer_workshop.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("demo_world")
    generate_dataset(root, images=4, locations=1, seed=5, width=960, height=540, workers=2)
    return root


@pytest.fixture
def real_photos(camera_traps, tmp_path):
    """Two real frames (a deer and a cougar) as one camera folder of symlinks: nothing copied."""
    root = tmp_path / "real"
    (root / "southwest").mkdir(parents=True)
    for name in ("2021-05-28_SYFR0041_deer.JPG", "IMAG1065_cougar.JPG"):
        (root / "southwest" / name).symlink_to(camera_traps / "southwest" / name)
    return root


def _run(root, *extra):
    env = {
        **os.environ,
        "DEER_IMAGE_ROOT": str(root),
        "DEER_DETECTOR_WEIGHTS": "",
        "DEER_REID_WEIGHTS": "",
        "DEER_DEVICE": "cpu",
    }
    cli = [sys.executable, "-m", "deer_pipeline.cli", "run", "--select", SELECT, *extra]
    done = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=850)
    assert done.returncode == 0, done.stdout + done.stderr
    return [line for line in (done.stdout + done.stderr).splitlines() if "demo" in line]


def _latest_metadata(asset):
    from deer_pipeline.instance import prepare_environment

    prepare_environment()
    with dg.DagsterInstance.get() as instance:
        record = instance.fetch_materializations(dg.AssetKey(asset), limit=1).records[0]
        return {k: v.value for k, v in record.asset_materialization.metadata.items()}


def test_demo_models_on_real_photos_warn_once(real_photos, clean_db):
    lines = _run(real_photos)
    assert len(lines) == 1, lines
    assert "DEER_DETECTOR_WEIGHTS and DEER_REID_WEIGHTS are the bundled demo" in lines[0]
    detections, embeddings = _latest_metadata("detections"), _latest_metadata("embeddings")
    assert "DEER_DETECTOR_WEIGHTS is the bundled demo" in detections["demo_models_warning"]
    assert "DEER_REID_WEIGHTS is the bundled demo" in embeddings["demo_models_warning"]


def test_demo_models_on_the_synthetic_world_do_not_warn(synthetic_world, clean_db):
    assert _run(synthetic_world) == []
    assert "demo_models_warning" not in _latest_metadata("detections")
    assert "demo_models_warning" not in _latest_metadata("embeddings")


def test_demo_weights_are_recognised_by_content_not_path(camera_traps, synthetic_world, tmp_path):
    copy = tmp_path / "my_detector.pt"
    shutil.copyfile(DEFAULT_DETECTOR_WEIGHTS, copy)
    line = demo_model_warning(camera_traps, str(copy), None)
    assert line is not None and "DEER_DETECTOR_WEIGHTS is" in line and "REID" not in line
    other = tmp_path / "other.pt"
    other.write_bytes(copy.read_bytes()[:-1] + b"x")
    assert demo_model_warning(camera_traps, str(other), "random") is None
    assert demo_model_warning(camera_traps, None, str(DEFAULT_REID_WEIGHTS)) is not None
    assert demo_model_warning(synthetic_world, str(copy), str(DEFAULT_REID_WEIGHTS)) is None
    assert is_synthetic_world(synthetic_world) and not is_synthetic_world(camera_traps)
    truth_only = tmp_path / "users_truth"
    truth_only.mkdir()
    (truth_only / "ground_truth.json").write_text('{"images": []}')  # not our generator's
    assert not is_synthetic_world(truth_only)
