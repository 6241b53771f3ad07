"""The ``deer_identities`` asset in a real Dagster run: metadata, ground-truth quality, gallery."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
from PIL import Image

from deer_pipeline.assets.identities import deer_identities
from deer_pipeline.db.connect import connect
from deer_pipeline.definitions import defs
from deer_pipeline.jobs import PIPELINE_JOB
from deer_pipeline.partitions import camera_locations
from deer_pipeline.resources.database import DatabaseResource
from deer_pipeline.resources.images import ImageRootResource
from deer_pipeline.resources.models import EmbedderResource
from deer_pipeline_tests.reid.builders import Scene, animal, view, walk


def _scene(conn, root: Path) -> None:
    """Two does walking side by side, later one of them again, and a buck; with ground truth."""
    scene = Scene("Oak")
    truth = []
    a, b, c = animal(11), animal(12), animal(13)
    left, right = walk(50, 30, 3, y=300), walk(700, 30, 3, y=320)
    scene.burst(
        [
            [("doe", left[k], view(a, 0.3, k)), ("doe", right[k], view(b, 0.3, 5 + k))]
            for k in range(3)
        ]
    )
    scene.burst([[("doe", left[k], view(a, 0.3, 10 + k))] for k in range(2)], minutes=45)
    scene.burst([[("buck", right[k], view(c, 0.3, 20 + k))] for k in range(2)], minutes=90)
    who = [[("A", "doe"), ("B", "doe")]] * 3 + [[("A", "doe")]] * 2 + [[("C", "buck")]] * 2
    scene.write(conn)
    boxes = iter(d["box"] for d in scene.detections)
    for image, people in zip(scene.images, who, strict=True):
        path = root / image["rel_path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (image["width"], image["height"]), (80, 110, 60)).save(path, "JPEG")
        truth.append(
            {
                "file": image["rel_path"],
                "boxes": [
                    {"bbox": list(next(boxes)), "class": cls, "individual_id": ind}
                    for ind, cls in people
                ],
            }
        )
    (root / "ground_truth.json").write_text(json.dumps({"images": truth}))


def materialize_oak(root: Path, run_config: dict | None = None) -> dict:
    """Materialize ``deer_identities`` for the scene's location; return its metadata values."""
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(camera_locations.name, ["Oak"])
    result = dg.materialize(
        [deer_identities],
        partition_key="Oak",
        instance=instance,
        resources={
            "database": DatabaseResource(),
            "image_root": ImageRootResource(root=str(root)),
            "embedder": EmbedderResource(),  # its version, not its model: nothing is loaded
        },
        run_config=run_config,
    )
    assert result.success
    (mat,) = result.asset_materializations_for_node("deer_identities")
    return {k: getattr(v, "value", v) for k, v in mat.metadata.items()}


def test_deer_identities_materializes_with_quality_and_gallery(clean_db, tmp_path, monkeypatch):
    root = tmp_path / "images"
    conn = connect(clean_db.data)
    _scene(conn, root)
    conn.close()
    meta = materialize_oak(root, {"ops": {"deer_identities": {"config": {"match_threshold": 0.7}}}})
    assert (meta["tracklets"], meta["tracklets_matched"], meta["deer_new"]) == (4, 1, 3)
    assert meta["deer_matched"] == 0  # the one match went to a deer founded in this run
    assert (meta["sightings_new"], meta["sightings_match"], meta["sightings_burst"]) == (3, 1, 6)
    assert meta["quality_bcubed_precision"] == 1.0 and meta["quality_bcubed_recall"] == 1.0
    assert (meta["quality_deer_found"], meta["quality_deer_true"]) == (3, 3)
    assert meta["quality_same_frame_merges"] == 0 and meta["quality_cross_sex_merges"] == 0
    assert meta["ms_per_tracklet"] > 0 and meta["match_threshold"] == 0.7
    assert (meta["sex_margin"], meta["deer_merged"], meta["sex_conflict_deer"]) == (0.6, 0, 0)
    assert meta["merges_refused_same_frame"] == 0 and meta["cluster_seconds"] >= 0
    assert Path(meta["gallery"]).is_file() and meta["gallery_deer"] == 3
    assert (meta["last_reviewed"], meta["review_decisions"]) == ("never", 0)


def test_pipeline_job_includes_deer_identities():
    job = defs.resolve_job_def(PIPELINE_JOB)
    assert dg.AssetKey("deer_identities") in job.asset_layer.executable_asset_keys
    spec = defs.resolve_assets_def("deer_identities")
    assert spec.group_names_by_key[dg.AssetKey("deer_identities")] == "pipeline"
    assert dg.AssetKey("embeddings") in spec.asset_deps[dg.AssetKey("deer_identities")]
