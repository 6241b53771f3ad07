"""Every asset check passes on good rows and fails on bad ones (real rows, real Dagster runs)."""

import dagster as dg
import pytest

from deer_pipeline.assets import camtrap_dp as reports
from deer_pipeline.assets import identities
from deer_pipeline.assets import inference as inference_domain
from deer_pipeline.assets import raw_images as ingest_domain
from deer_pipeline.assets.camtrap_dp import camtrap_dp
from deer_pipeline.assets.identities import deer_identities
from deer_pipeline.assets.inference import inference
from deer_pipeline.assets.raw_images import raw_images
from deer_pipeline.db.connect import connect
from deer_pipeline.partitions import camera_locations
from deer_pipeline.reid.identify import identify_location
from deer_pipeline.reid.matching import MatchConfig
from deer_pipeline.resources.camtrap import CamtrapResource
from deer_pipeline.resources.database import DatabaseResource
from deer_pipeline.resources.images import ImageRootResource
from deer_pipeline.resources.models import DetectorResource, EmbedderResource
from deer_pipeline_tests.reid.builders import Scene, animal, view

KEY = "Creek"
ASSETS = [raw_images, inference, deer_identities, camtrap_dp]
CHECKS = [*ingest_domain.CHECKS, *inference_domain.CHECKS, *identities.CHECKS, *reports.CHECKS]


@pytest.fixture
def scene(clean_db, tmp_path):
    """A doe and a buck through a burst of three frames, a fawn an hour later: good data."""
    conn = connect(clean_db.data, autocommit=True)
    s = Scene(KEY)
    s.burst(
        [
            [
                ("doe", (100, 100, 400, 400), view(animal(1), 0.2, k)),
                ("buck", (700, 300, 1100, 700), view(animal(2), 0.2, 10 + k)),
            ]
            for k in range(3)
        ]
    )
    s.burst([[("fawn", (10, 10, 110, 110), view(animal(3), 0.2, 20))]], minutes=60)
    ids = s.write(conn)
    conn.autocommit = False
    identify_location(conn, KEY, MatchConfig(threshold=0.7))
    conn.autocommit = True
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(camera_locations.name, [KEY])
    resources = {
        "database": DatabaseResource(),
        "image_root": ImageRootResource(root=str(tmp_path)),
        "detector": DetectorResource(weights=str(tmp_path / "none.pt")),
        "embedder": EmbedderResource(weights="random"),
        "camtrap": CamtrapResource(),
    }
    yield conn.cursor(), ids, instance, resources
    conn.close()


def run(instance, resources, selection):
    job = dg.define_asset_job("checks_job", selection=selection)
    defs = dg.Definitions(assets=ASSETS, asset_checks=CHECKS, jobs=[job], resources=resources)
    result = defs.resolve_job_def("checks_job").execute_in_process(
        tags={"dagster/partition": KEY}, instance=instance, raise_on_error=False
    )
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    return result, checks


def run_checks(scene, *names):
    _, _, instance, resources = scene
    keys = [c.check_key for c in CHECKS if c.check_key.name in names]
    return run(instance, resources, dg.AssetSelection.checks(*keys))[1]


def test_good_rows_pass_every_check(scene):
    _, _, instance, resources = scene
    result, _ = run(instance, resources, dg.AssetSelection.assets(camtrap_dp))
    assert result.success
    checks = run_checks(scene, *[c.check_key.name for c in CHECKS])
    assert len(checks) == 9
    assert {name: e.passed for name, e in checks.items()} == {name: True for name in checks}
    assert checks["one_embedding_per_detection"].metadata["detections"].value == 7
    assert checks["unit_norm"].metadata["embeddings"].value == 7


def test_failed_files_and_missing_capture_times_warn(scene):
    cur, _, _, _ = scene
    cur.execute(
        "INSERT INTO images (location_key, rel_path, status, error)"
        " VALUES (%s, 'Creek/BAD.JPG', 'failed', 'truncated')",
        (KEY,),
    )
    cur.execute("UPDATE images SET captured_at = NULL WHERE rel_path = 'Creek/B0003_00.JPG'")
    checks = run_checks(scene, "failed_files_share", "capture_time_share")
    failed, no_time = checks["failed_files_share"], checks["capture_time_share"]
    assert (failed.passed, failed.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert failed.metadata["failed_share"].value == 0.2  # 1 of 5 files
    assert (no_time.passed, no_time.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert no_time.metadata["without_capture_time"].value == 1


def test_box_outside_and_duplicate_boxes_fail(scene):
    cur, ids, _, _ = scene
    cur.execute("UPDATE detections SET x2 = 1400 WHERE id = %s", (ids[1],))  # image is 1280 wide
    cur.execute(
        "INSERT INTO detections (image_id, model_version, det_index, class_name, confidence,"
        " x1, y1, x2, y2) SELECT image_id, model_version, 9, 'buck', 0.4, x1 + 5, y1 + 5, x2, y2"
        " FROM detections WHERE id = %s RETURNING id",
        (ids[2],),
    )
    twin = cur.fetchone()[0]
    checks = run_checks(scene, "boxes_inside_image", "no_duplicate_deer_boxes")
    inside, dup = checks["boxes_inside_image"], checks["no_duplicate_deer_boxes"]
    assert (inside.passed, inside.severity) == (False, dg.AssetCheckSeverity.ERROR)
    assert inside.metadata["outside"].value == 1
    assert (dup.passed, dup.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert dup.metadata["examples"].value == [[ids[2], twin, 0.967]]


def test_missing_and_non_unit_embeddings_fail(scene):
    cur, ids, _, _ = scene
    cur.execute("DELETE FROM embeddings WHERE detection_id = %s", (ids[0],))
    doubled = "[" + ",".join(["2"] + ["0"] * 2047) + "]"
    cur.execute(
        "UPDATE embeddings SET embedding = %s::halfvec WHERE detection_id = %s",
        (
            doubled,
            ids[3],
        ),
    )
    checks = run_checks(scene, "one_embedding_per_detection", "unit_norm")
    cover, norm = checks["one_embedding_per_detection"], checks["unit_norm"]
    assert (cover.passed, cover.severity) == (False, dg.AssetCheckSeverity.ERROR)
    assert cover.metadata["examples"].value == [ids[0]]
    assert (norm.passed, norm.severity) == (False, dg.AssetCheckSeverity.ERROR)
    assert norm.metadata["examples"].value == [[ids[3], "emb-test", 2.0]]


def test_same_frame_merge_and_sex_conflict_fail(scene):
    cur, ids, _, _ = scene
    cur.execute("SELECT deer_id FROM sightings WHERE detection_id = %s", (ids[0],))
    doe = cur.fetchone()[0]
    # the buck of frame 0 joins the doe: two places in one frame, and a doe that is a buck
    cur.execute("UPDATE sightings SET deer_id = %s WHERE detection_id IN %s", (doe, (ids[1],)))
    checks = run_checks(scene, "no_same_frame_merge", "no_confident_sex_conflict")
    merge, sex = checks["no_same_frame_merge"], checks["no_confident_sex_conflict"]
    assert (merge.passed, merge.severity) == (False, dg.AssetCheckSeverity.ERROR)
    assert merge.metadata["merges"].value == 1
    assert (sex.passed, sex.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert sex.metadata["examples"].value == [[doe, ["buck", "doe"]]]
    cur.execute("UPDATE detections SET confidence = 0.3 WHERE id = %s", (ids[1],))
    assert run_checks(scene, "no_confident_sex_conflict")["no_confident_sex_conflict"].passed


def test_deer_missing_from_the_package_fails(scene):
    cur, ids, instance, resources = scene
    result, _ = run(instance, resources, dg.AssetSelection.assets(camtrap_dp))
    assert result.success
    cur.execute("INSERT INTO deer (sex) VALUES ('fawn') RETURNING id")
    new = cur.fetchone()[0]
    cur.execute("UPDATE sightings SET deer_id = %s WHERE detection_id = %s", (new, ids[6]))
    check = run_checks(scene, "every_deer_is_an_individual")["every_deer_is_an_individual"]
    assert (check.passed, check.severity) == (False, dg.AssetCheckSeverity.ERROR)
    assert check.metadata["examples"].value == [f"deer-{new}"]


def test_blocking_check_stops_identities_on_corrupt_embeddings(scene):
    cur, ids, instance, resources = scene
    cur.execute("SELECT count(*), max(created_at) FROM sightings")
    before = cur.fetchone()
    cur.execute("DELETE FROM embeddings WHERE detection_id = %s", (ids[0],))
    unit = next(c for c in CHECKS if c.check_key.name == "one_embedding_per_detection")
    selection = dg.AssetSelection.checks(unit.check_key) | dg.AssetSelection.assets(deer_identities)
    result, checks = run(instance, resources, selection)
    assert checks["one_embedding_per_detection"].passed is False
    ran = {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()}
    assert "deer_identities" not in ran and not result.success
    cur.execute("SELECT count(*), max(created_at) FROM sightings")
    assert cur.fetchone() == before  # identities did not re-derive anything
