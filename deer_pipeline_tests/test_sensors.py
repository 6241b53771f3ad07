"""``new_images_sensor`` on a real Dagster instance: partitions, one run per change, no noise."""

import dagster as dg

from deer_pipeline.assets.raw_images import raw_images
from deer_pipeline.definitions import defs
from deer_pipeline.ingest.locations import location_key
from deer_pipeline.partitions import camera_locations
from deer_pipeline.resources.database import DatabaseResource
from deer_pipeline.resources.images import ImageRootResource
from deer_pipeline.sensors import load_cursor, new_images_sensor

from .ingest import photos

SOUTH = location_key("South Field")


def tick(instance, root, cursor, settle=0.0):
    """Evaluate the sensor once and apply its partition requests, as the daemon would."""
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        definitions=defs,
        resources={"image_root": ImageRootResource(root=str(root), settle_seconds=settle)},
    )
    result = new_images_sensor(context)
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def runs(result):
    return sorted(request.partition_key for request in result.run_requests)


def added(result):
    return sorted(key for r in result.dynamic_partitions_requests for key in r.partition_keys)


def test_new_folders_become_partitions_and_changes_run_once(tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    photos.write(tmp_path / "North" / "DCIM" / "a.jpg", photos.jpeg_bytes(1))
    photos.write(tmp_path / "North" / "DCIM" / "b.jpg", photos.jpeg_bytes(2))
    photos.write(tmp_path / "South Field" / "c.jpg", photos.jpeg_bytes(3))

    first = tick(instance, tmp_path, None)
    assert added(first) == runs(first) == sorted(["North", SOUTH])
    assert set(instance.get_dynamic_partitions(camera_locations.name)) == {"North", SOUTH}
    assert all(r.run_key.startswith(f"{r.partition_key}:") for r in first.run_requests)

    second = tick(instance, tmp_path, first.cursor)
    assert (runs(second), added(second)) == ([], [])
    assert second.skip_reason.skip_message == "no new images"

    for i in range(3):
        photos.write(tmp_path / "North" / "DCIM" / f"new{i}.jpg", photos.jpeg_bytes(10 + i))
    photos.write(tmp_path / "East" / "e.jpg", photos.jpeg_bytes(20))
    (tmp_path / "Empty").mkdir()
    third = tick(instance, tmp_path, second.cursor)
    assert added(third) == ["East", "Empty"]  # an empty folder is a partition, with no run
    assert runs(third) == ["East", "North"]
    assert load_cursor(third.cursor)["North"]["files"] == 5

    (tmp_path / "North" / "DCIM" / "a.jpg").unlink()
    fourth = tick(instance, tmp_path, third.cursor)
    assert runs(fourth) == ["North"]
    assert fourth.run_requests[0].run_key != third.run_requests[1].run_key


def test_files_still_being_copied_wait_for_a_later_tick(tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    photos.write(tmp_path / "South Field" / "c.jpg", photos.jpeg_bytes(3))
    first = tick(instance, tmp_path, None)
    photos.write(tmp_path / "South Field" / "d.jpg", photos.jpeg_bytes(4))  # changed just now
    waiting = tick(instance, tmp_path, first.cursor, settle=60)
    assert runs(waiting) == []
    assert waiting.skip_reason.skip_message == f"still being written: {SOUTH}"
    assert load_cursor(waiting.cursor) == load_cursor(first.cursor)
    settled = tick(instance, tmp_path, waiting.cursor, settle=0)
    assert runs(settled) == [SOUTH]


def test_a_listing_already_ingested_needs_no_run_even_without_cursor(tmp_path, clean_db):
    instance = dg.DagsterInstance.ephemeral()
    photos.write(tmp_path / "North" / "a.jpg", photos.jpeg_bytes(1))
    photos.write(tmp_path / "South Field" / "c.jpg", photos.jpeg_bytes(3))
    instance.add_dynamic_partitions(camera_locations.name, ["North", SOUTH])
    result = dg.materialize(
        [raw_images],
        partition_key="North",
        instance=instance,
        resources={
            "database": DatabaseResource(),
            "image_root": ImageRootResource(root=str(tmp_path), settle_seconds=0),
        },
    )
    assert result.success
    fresh = tick(instance, tmp_path, None)  # e.g. `deer-pipeline run` did it, or cursor lost
    assert runs(fresh) == [SOUTH] and added(fresh) == []
    assert set(load_cursor(fresh.cursor)) == {"North", SOUTH}
    (tmp_path / "North" / "a.jpg").unlink()  # emptied: its rows must become missing
    emptied = tick(instance, tmp_path, fresh.cursor)
    assert runs(emptied) == ["North"]
