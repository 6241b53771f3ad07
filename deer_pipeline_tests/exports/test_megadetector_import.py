"""``import megadetector``: our own export imports back to the same boxes; embeddings and
identities run on imported boxes without our detector; a malformed file changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import dagster as dg
import pytest

from deer_pipeline.assets.identities import deer_identities
from deer_pipeline.assets.inference import inference
from deer_pipeline.assets.raw_images import raw_images
from deer_pipeline.cli import main
from deer_pipeline.config import DEFAULT_DETECTOR_WEIGHTS
from deer_pipeline.db.connect import connect
from deer_pipeline.ingest.locations import location_key
from deer_pipeline.partitions import camera_locations
from deer_pipeline.resources.database import DatabaseResource
from deer_pipeline.resources.images import ImageRootResource
from deer_pipeline.resources.models import DetectorResource, EmbedderResource


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from deer_workshop.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("import_world")
    generate_dataset(root, images=6, locations=1, seed=5, width=960, height=540, workers=2)
    folder = next(p.name for p in root.iterdir() if p.is_dir())
    return root, location_key(folder)


def _resources(root, detector_weights):
    return {
        "database": DatabaseResource(),
        "image_root": ImageRootResource(root=str(root), settle_seconds=0),
        "detector": DetectorResource(weights=detector_weights, device="cpu", batch_size=4),
        "embedder": EmbedderResource(weights="random", device="cpu", batch_size=8),
    }


def _materialize(assets, key, resources, selection=None):
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(camera_locations.name, [key])
    result = dg.materialize(
        assets, partition_key=key, instance=instance, resources=resources, selection=selection
    )
    assert result.success
    return result


def _boxes(cur, version):
    cur.execute(
        "SELECT i.rel_path, d.det_index, d.class_name, d.confidence, d.x1, d.y1, d.x2, d.y2"
        " FROM detections d JOIN images i ON i.id = d.image_id WHERE d.model_version = %s"
        " ORDER BY i.rel_path, d.det_index",
        (version,),
    )
    return cur.fetchall()


def _snapshot(cur):
    cur.execute("SELECT * FROM detections ORDER BY id")
    return cur.fetchall()


def test_own_export_imports_back_and_embeds_without_our_detector(world, clean_db, tmp_path):
    root, key = world
    resources = _resources(root, str(DEFAULT_DETECTOR_WEIGHTS))
    _materialize([raw_images, inference], key, resources, selection=["raw_images", "detections"])
    conn = connect(clean_db.data, autocommit=True)
    cur = conn.cursor()
    cur.execute("SELECT DISTINCT model_version FROM detections")
    (ours,) = [v for (v,) in cur.fetchall()]
    original = _boxes(cur, ours)
    assert len(original) > 0
    md = tmp_path / "md.json"
    assert main(["export", "megadetector", str(md)]) == 0

    env = {**os.environ, "DEER_IMAGE_ROOT": str(root)}
    cli = [sys.executable, "-m", "deer_pipeline.cli", "import", "megadetector", str(md)]
    done = subprocess.run(
        [*cli, "--model-version", "md-roundtrip"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert f"{len(original)} detections on 6 images (0 files not found" in done.stdout
    back = _boxes(cur, "md-roundtrip")
    assert [b[:3] for b in back] == [b[:3] for b in original]  # same images, ranks, classes
    for got, want in zip(back, original, strict=True):
        assert abs(got[3] - want[3]) <= 0.0005  # conf written with 3 digits
        # corners written as x, y, w, h with 4 digits of the image's size (960 x 540): the far
        # corner carries two roundings
        assert max(abs(g - w) for g, w in zip(got[4:], want[4:], strict=True)) <= 1e-4 * 960, (
            got,
            want,
        )
    cur.execute("SELECT id FROM detections WHERE model_version = 'md-roundtrip' ORDER BY id")
    ids = [i for (i,) in cur.fetchall()]
    again = subprocess.run(
        [*cli, "--model-version", "md-roundtrip"], env=env, capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr
    cur.execute("SELECT id FROM detections WHERE model_version = 'md-roundtrip' ORDER BY id")
    assert [i for (i,) in cur.fetchall()] == ids  # a re-import replaces, keeping ids

    # Our detector's boxes go; embeddings and identities run on the imported ones alone, with
    # detector weights that do not exist.
    cur.execute("DELETE FROM detections WHERE model_version = %s", (ours,))
    no_detector = _resources(root, str(tmp_path / "no-such-detector.pt"))
    result = _materialize(
        [inference, deer_identities], key, no_detector, selection=["embeddings", "deer_identities"]
    )
    meta = {
        m.asset_key.to_user_string(): {k: getattr(v, "value", v) for k, v in m.metadata.items()}
        for m in result.get_asset_materialization_events()
        for m in [m.materialization]
    }
    assert meta["embeddings"]["detector_model_version"] == "md-roundtrip"
    assert meta["embeddings"]["embeddings"] == len(ids)
    cur.execute("SELECT detection_id FROM embeddings ORDER BY detection_id")
    assert [i for (i,) in cur.fetchall()] == ids
    cur.execute("SELECT detection_id FROM sightings ORDER BY detection_id")
    assert [i for (i,) in cur.fetchall()] == ids  # every imported box is a sighting of a deer
    conn.close()


MALFORMED = {
    "not json": "{'images': [",
    "no images": json.dumps({"info": {}}),
    "unknown category": json.dumps(
        {
            "detection_categories": {"1": "animal"},
            "images": [
                {"file": "a.jpg", "detections": []},
                {"file": "b.jpg", "detections": [{"category": "7", "conf": 0.9, "bbox": [0] * 4}]},
            ],
        }
    ),
    "box outside": json.dumps(
        {
            "detection_categories": {"1": "animal"},
            "images": [
                {
                    "file": "b.jpg",
                    "detections": [{"category": "1", "conf": 0.9, "bbox": [0.5, 0.5, 0.9, 0.1]}],
                }
            ],
        }
    ),
    "conf above one": json.dumps(
        {
            "detection_categories": {"1": "animal"},
            "images": [
                {"file": "b.jpg", "detections": [{"category": "1", "conf": 7, "bbox": [0] * 4}]}
            ],
        }
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_file_is_one_line_and_changes_nothing(case, world, clean_db, tmp_path):
    root, key = world
    resources = _resources(root, str(DEFAULT_DETECTOR_WEIGHTS))
    _materialize([raw_images], key, resources)
    conn = connect(clean_db.data, autocommit=True)
    cur = conn.cursor()
    cur.execute("SELECT rel_path FROM images ORDER BY rel_path")
    files = [r for (r,) in cur.fetchall()]
    good = {
        "detection_categories": {"1": "animal"},
        "images": [
            {
                "file": f,
                "detections": [{"category": "1", "conf": 0.9, "bbox": [0.1, 0.1, 0.2, 0.2]}],
            }
            for f in files
        ],
    }
    first = tmp_path / "good.json"
    first.write_text(json.dumps(good))
    assert main(["import", "megadetector", str(first), "--model-version", "x"]) == 0
    before = _snapshot(cur)
    assert len(before) == len(files)
    bad = tmp_path / "bad.json"
    body = json.loads(MALFORMED[case]) if case != "not json" else None
    if body is not None and body.get("images"):
        # the bad entry comes after new boxes for every image: none of them may be written
        moved = [0.3, 0.3, 0.2, 0.2]
        body["images"] = [
            {"file": f, "detections": [{"category": "1", "conf": 0.5, "bbox": moved}]}
            for f in files
        ] + body["images"]
    bad.write_text(json.dumps(body) if body is not None else MALFORMED[case])
    env = {**os.environ, "DEER_IMAGE_ROOT": str(root)}
    done = subprocess.run(
        [sys.executable, "-m", "deer_pipeline.cli", "import", "megadetector", str(bad)]
        + ["--model-version", "x"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "MegaDetector" in lines[0] or "not JSON" in lines[0]
    assert _snapshot(cur) == before
    conn.close()
