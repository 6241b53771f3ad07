"""Run config that names other detector weights is versioned as such, in the rows and in Dagster."""

import dagster as dg
import pytest

from deer_pipeline.assets.inference import DETECTIONS, EMBEDDINGS, inference
from deer_pipeline.assets.raw_images import raw_images
from deer_pipeline.config import DEFAULT_DETECTOR_WEIGHTS
from deer_pipeline.db.connect import connect
from deer_pipeline.ingest.locations import location_key
from deer_pipeline.model_versions import (
    detections_code_version,
    embeddings_code_version,
    weights_version,
)
from deer_pipeline.partitions import camera_locations
from deer_pipeline.resources.database import DatabaseResource
from deer_pipeline.resources.images import ImageRootResource
from deer_pipeline.resources.models import DetectorResource, EmbedderResource
from deer_pipeline.vision.runtime import file_version


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Four small synthetic frames of one location, and a second detector's weights."""
    from deer_pipeline.vision.untrained import save_untrained_detector
    from deer_workshop.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("versions_world")
    generate_dataset(root, images=4, locations=1, seed=12, width=640, height=360, workers=1)
    folder = next(p.name for p in root.iterdir() if p.is_dir())
    other = save_untrained_detector(tmp_path_factory.mktemp("other") / "other.pt", seed=3)
    return root, folder, str(other)


def _tags_and_metadata(result):
    out = {}
    for mat in result.asset_materializations_for_node("inference"):
        meta = {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
        out[mat.asset_key] = (mat.tags["dagster/code_version"], meta["model_version"])
    return out


def test_overriding_the_detector_weights_changes_model_and_code_version(world, clean_db):
    root, folder, other = world
    key = location_key(folder)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(camera_locations.name, [key])
    resources = {
        "database": DatabaseResource(),
        "image_root": ImageRootResource(root=str(root), settle_seconds=0),
        "detector": DetectorResource(device="cpu", conf=0.05, batch_size=4),
        "embedder": EmbedderResource(weights="random", device="cpu", batch_size=8),
    }
    assert dg.materialize(
        [raw_images], partition_key=key, instance=instance, resources=resources
    ).success
    ops = {"inference": {"config": {"batch_size": 2, "decode_workers": 1}}}

    def run(run_config):
        result = dg.materialize(
            [inference],
            partition_key=key,
            instance=instance,
            resources=resources,
            run_config={"ops": ops, **run_config},
        )
        assert result.success
        return _tags_and_metadata(result)

    default = run({})
    chosen = run({"resources": {"detector": {"config": {"weights": other}}}})

    default_version = file_version(DEFAULT_DETECTOR_WEIGHTS)
    other_version = file_version(other)
    assert default_version != other_version
    assert weights_version(str(DEFAULT_DETECTOR_WEIGHTS)) == default_version
    # the definitions' code versions are those of the configured (default) weights
    assert inference.code_versions_by_key[DETECTIONS] == detections_code_version(default_version)
    assert default[DETECTIONS] == (detections_code_version(default_version), default_version)
    # the run that named other weights records their version as model and code version
    assert chosen[DETECTIONS] == (detections_code_version(other_version), other_version)
    assert chosen[EMBEDDINGS][0] == embeddings_code_version(other_version, "random-0")
    assert chosen[DETECTIONS][0] != inference.code_versions_by_key[DETECTIONS]
    conn = connect(clean_db.data)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT DISTINCT model_version FROM detections ORDER BY 1")
            stored = [row[0] for row in cur.fetchall()]
    finally:
        conn.close()
    assert stored == sorted([default_version, other_version])
