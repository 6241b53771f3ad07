"""Who is who does not change with the models' arithmetic: fp32 against ``auto`` (bf16 here).

The whole chain (ingest, detections, embeddings, identities) runs twice as real Dagster runs on
one small synthetic world, once per precision, from an empty database each time; the B-cubed
precision and recall of the two runs agree within 0.01.
"""

import dagster as dg
import pytest
import torch

from deer_pipeline.assets.identities import deer_identities
from deer_pipeline.assets.inference import inference
from deer_pipeline.assets.raw_images import raw_images
from deer_pipeline.db.connect import connect
from deer_pipeline.ingest.locations import location_key
from deer_pipeline.partitions import camera_locations
from deer_pipeline.resources.database import DatabaseResource
from deer_pipeline.resources.images import ImageRootResource
from deer_pipeline.resources.models import DetectorResource, EmbedderResource
from deer_pipeline.vision.runtime import cpu_bf16_units, resolve_precision
from deer_pipeline_tests.conftest import _DATA_TABLES


def _identities(urls, root, key: str, precision: str) -> dict:
    conn = connect(urls.data, autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"TRUNCATE {_DATA_TABLES} RESTART IDENTITY CASCADE")
    conn.close()
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(camera_locations.name, [key])
    models = dict(device="cpu", precision=precision)
    result = dg.materialize(
        [raw_images, inference, deer_identities],
        partition_key=key,
        instance=instance,
        resources={
            "database": DatabaseResource(),
            "image_root": ImageRootResource(root=str(root), settle_seconds=0),
            "detector": DetectorResource(batch_size=8, **models),
            "embedder": EmbedderResource(**models),
        },
        run_config={
            "ops": {
                "inference": {"config": {"batch_size": 8, "decode_workers": 2}},
                "deer_identities": {"config": {"gallery": False}},
            }
        },
    )
    assert result.success
    meta = {}
    for node in ("inference", "deer_identities"):
        for mat in result.asset_materializations_for_node(node):
            name = mat.asset_key.to_user_string()
            meta[name] = {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
    return meta


@pytest.mark.skipif(
    not cpu_bf16_units(),
    reason="this CPU has no bfloat16 units (AMX or AVX-512 BF16): auto is fp32 here, nothing to "
    "compare",
)
def test_identity_figures_equal_in_fp32_and_auto(clean_db, tmp_path):
    from deer_workshop.synthetic import generate_dataset

    generate_dataset(tmp_path, images=36, locations=1, seed=31, width=1280, height=720, workers=2)
    folder = next(p.name for p in tmp_path.iterdir() if p.is_dir())
    key = location_key(folder)
    fp32 = _identities(clean_db, tmp_path, key, "fp32")
    auto = _identities(clean_db, tmp_path, key, "auto")
    assert resolve_precision("auto", torch.device("cpu")) == "bf16"
    assert fp32["detections"]["precision"] == fp32["embeddings"]["precision"] == "fp32"
    assert auto["detections"]["precision"] == auto["embeddings"]["precision"] == "bf16"
    a, b = fp32["deer_identities"], auto["deer_identities"]
    assert a["quality_sightings_matched"] >= 20, "enough sightings to score"
    assert abs(a["quality_bcubed_precision"] - b["quality_bcubed_precision"]) <= 0.01
    assert abs(a["quality_bcubed_recall"] - b["quality_bcubed_recall"]) <= 0.01
    assert abs(a["quality_deer_found"] - b["quality_deer_found"]) <= 1
