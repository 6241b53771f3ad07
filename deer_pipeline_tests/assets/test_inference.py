"""``detections`` and ``embeddings`` in real Dagster runs against the embedded database."""

import dagster as dg
import pytest
import torch

from deer_pipeline.assets.inference import inference
from deer_pipeline.assets.raw_images import raw_images
from deer_pipeline.config import DEFAULT_DETECTOR_WEIGHTS
from deer_pipeline.db.connect import connect
from deer_pipeline.db.indexes import index_name
from deer_pipeline.ingest.locations import location_key
from deer_pipeline.partitions import camera_locations
from deer_pipeline.resources.database import DatabaseResource
from deer_pipeline.resources.images import ImageRootResource
from deer_pipeline.resources.models import DetectorResource, EmbedderResource
from deer_pipeline.vision.runtime import resolve_precision


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Six small synthetic frames of one location, and the weights to use."""
    from deer_pipeline.vision.untrained import save_untrained_detector
    from deer_workshop.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("inference_world")
    generate_dataset(root, images=6, locations=1, seed=11, width=960, height=540, workers=2)
    folder = next(p.name for p in root.iterdir() if p.is_dir())
    det = DEFAULT_DETECTOR_WEIGHTS
    if not det.is_file():
        det = save_untrained_detector(tmp_path_factory.mktemp("w") / "det.pt")
    return root, folder, str(det)


def _resources(root, det):
    return {
        "database": DatabaseResource(),
        "image_root": ImageRootResource(root=str(root), settle_seconds=0),
        "detector": DetectorResource(weights=det, device="cpu", conf=0.05, batch_size=4),
        "embedder": EmbedderResource(
            weights="random", device="cpu", batch_size=8, precision="fp32"
        ),
    }


def _run(instance, key, resources, selection=None):
    result = dg.materialize(
        [inference],
        partition_key=key,
        instance=instance,
        resources=resources,
        selection=selection,
        run_config={"ops": {"inference": {"config": {"batch_size": 2, "decode_workers": 2}}}},
    )
    assert result.success
    out = {}
    for mat in result.asset_materializations_for_node("inference"):
        out[mat.asset_key.to_user_string()] = {
            k: getattr(v, "value", v) for k, v in mat.metadata.items()
        }
    return out


def _rows(cur):
    cur.execute("SELECT id, image_id, det_index, x1 FROM detections ORDER BY id")
    dets = cur.fetchall()
    cur.execute("SELECT detection_id, model_version FROM embeddings ORDER BY detection_id")
    return dets, cur.fetchall()


def test_detect_embed_rerun_stale_and_subsets(world, clean_db):
    root, folder, det = world
    key = location_key(folder)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(camera_locations.name, [key])
    resources = _resources(root, det)
    ingest = dg.materialize([raw_images], partition_key=key, instance=instance, resources=resources)
    assert ingest.success
    conn = connect(clean_db.data, autocommit=True)
    cur = conn.cursor()
    cur.execute("SELECT id, rel_path FROM images WHERE status = 'ok' ORDER BY id")
    images = cur.fetchall()
    assert len(images) == 6
    broken_id, broken_rel = images[-1]
    data = (root / broken_rel).read_bytes()
    (root / broken_rel).write_bytes(data[: len(data) // 2])  # damaged after ingest

    meta = _run(instance, key, resources)
    det_meta, emb_meta = meta["detections"], meta["embeddings"]
    dets, embs = _rows(cur)
    assert det_meta["detections"] == len(dets) > 0 and emb_meta["embeddings"] == len(embs)
    assert {d[0] for d in dets} == {e[0] for e in embs}
    assert (det_meta["images"], det_meta["failed_images"]) == (5, 1)
    assert 0 < det_meta["db_write_share"] < 1 and det_meta["images_per_s"] > 0
    assert emb_meta["model_version"] == "random-0" and "random" in emb_meta["warning"]
    # the arithmetic each model used: the detector's auto resolved on this CPU, fp32 as asked
    auto = resolve_precision("auto", torch.device("cpu"))
    assert (det_meta["precision"], emb_meta["precision"]) == (auto, "fp32")
    assert emb_meta["hnsw"] == "rebuilt"  # a first load into an empty table
    index = index_name("embeddings", "random-0")  # the version's own, made at its first write
    cur.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", (index,))
    indexdef = cur.fetchone()[0]
    assert "hnsw" in indexdef and "halfvec(2048)" in indexdef and "'random-0'" in indexdef
    cur.execute("SELECT status, error FROM images WHERE id = %s", (broken_id,))
    status, error = cur.fetchone()
    assert status == "failed" and "cannot decode" in error

    # a stale box of the same model version, and a box of another version
    image_id = dets[0][1]
    version = det_meta["model_version"]
    cur.execute(
        "INSERT INTO detections (image_id, model_version, det_index, class_name, confidence, "
        "x1, y1, x2, y2) VALUES (%s, %s, 99, 'doe', 0.5, 1, 1, 2, 2), "
        "(%s, 'other', 0, 'doe', 0.5, 1, 1, 2, 2)",
        (image_id, version, image_id),
    )
    _run(instance, key, resources)
    again, again_embs = _rows(cur)
    assert again[: len(dets)] == dets  # same ids, same boxes: replaced, never duplicated
    assert [d for d in again if d not in dets] == [(again[-1][0], image_id, 0, 1.0)]  # 'other'
    assert again_embs == embs

    only = _run(instance, key, resources, selection=["embeddings"])
    assert set(only) == {"embeddings"} and only["embeddings"]["embeddings"] == len(embs)
    only = _run(instance, key, resources, selection=["detections"])
    assert set(only) == {"detections"}
    assert _rows(cur) == (again, again_embs)
    cur.execute("SELECT count(*) FROM pg_indexes WHERE indexname = %s", (index,))
    assert cur.fetchone()[0] == 1
    conn.close()
