"""The ``raw_images`` asset in real Dagster runs against the embedded database."""

import shutil

import dagster as dg

from deer_pipeline.assets.raw_images import failures_markdown, raw_images
from deer_pipeline.definitions import defs
from deer_pipeline.ingest.locations import location_key
from deer_pipeline.jobs import PIPELINE_JOB
from deer_pipeline.partitions import camera_locations
from deer_pipeline.resources.database import DatabaseResource
from deer_pipeline.resources.images import ImageRootResource

from ..ingest import photos


def _materialize(instance, root, key):
    return dg.materialize(
        [raw_images],
        partition_key=key,
        instance=instance,
        resources={
            "database": DatabaseResource(),
            "image_root": ImageRootResource(root=str(root), settle_seconds=0),
        },
    )


def _metadata(result):
    (mat,) = result.asset_materializations_for_node("raw_images")
    return {key: getattr(value, "value", value) for key, value in mat.metadata.items()}


def test_pipeline_job_from_definitions_ingests_real_photos(camera_traps, clean_db, monkeypatch):
    monkeypatch.setenv("DEER_IMAGE_ROOT", str(camera_traps))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(camera_locations.name, ["peru_s90"])
    job = defs.resolve_job_def(PIPELINE_JOB)
    result = job.execute_in_process(partition_key="peru_s90", instance=instance)
    assert result.success
    meta = _metadata(result)
    assert (meta["status_ok"], meta["new"], meta["bursts"], meta["skipped"]) == (60, 60, 20, 1)
    assert meta["images_per_s"] > 0 and meta["failures"] == "No failed files."
    assert meta["scan_notes"] == "None."
    again = _metadata(job.execute_in_process(partition_key="peru_s90", instance=instance))
    assert (again["files_read"], again["rows_written"], again["unchanged"]) == (0, 0, 60)


def test_partition_key_maps_back_to_an_odd_folder_name(tmp_path, clean_db):
    folder = "Ridge #2 (old)"
    photos.write(tmp_path / folder / "DCIM" / "100MEDIA" / "a.jpg", photos.jpeg_bytes(1))
    photos.write(tmp_path / folder / "DCIM" / "100MEDIA" / "bad.jpg", b"<html></html>")
    (tmp_path / folder / "DCIM" / "loop").symlink_to("..")
    key = location_key(folder)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(camera_locations.name, [key])
    meta = _metadata(_materialize(instance, tmp_path, key))
    assert (meta["location"], meta["status_ok"], meta["status_failed"]) == (folder, 1, 1)
    assert (
        "| Ridge #2 (old)/DCIM/100MEDIA/bad.jpg | not an image: the file is an HTML page |"
        in (meta["failures"])
    )
    shutil.rmtree(tmp_path / folder)  # the folder is gone: found again through `locations`
    gone = _metadata(_materialize(instance, tmp_path, key))
    assert (gone["status_missing"], gone["missing"], gone["location"]) == (2, 2, folder)


def test_unknown_partition_fails_the_run(tmp_path, clean_db):
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(camera_locations.name, ["nowhere"])
    result = dg.materialize(
        [raw_images],
        partition_key="nowhere",
        instance=instance,
        resources={
            "database": DatabaseResource(),
            "image_root": ImageRootResource(root=str(tmp_path)),
        },
        raise_on_error=False,
    )
    assert not result.success


def test_failures_table_escapes_and_truncates():
    rows = [(f"loc/a|{i}.jpg", "bad\nthing") for i in range(25)]
    table = failures_markdown(rows, 25).splitlines()
    assert table[2] == "| loc/a\\|0.jpg | bad thing |"
    assert table[-1] == "| ... | and 5 more |" and len(table) == 2 + 20 + 1
