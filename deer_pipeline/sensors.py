"""``new_images_sensor``: new camera folders become partitions; new or changed files start runs.

Every tick walks the image root (``stat`` only) and fingerprints each location folder. A folder
that is not yet a ``camera_locations`` partition is added in the same tick. A location whose
fingerprint differs from the one in the cursor gets one run of the per-location pipeline job,
once nothing in it has changed for the resource's ``settle_seconds`` (a card still being copied
is left for a later tick), unless its last ``raw_images`` materialization already recorded that
exact listing (e.g. ``deer-pipeline run`` ingested it, or the cursor was lost).

The run key is ``<location>:<digest of the listing>:<newest change time>``: the same state never
runs twice, and a state that comes back (a file deleted, then restored) still runs again.
Default status RUNNING: under ``deer-pipeline dev`` (webserver + daemon) a folder of photos
dropped into the image root flows through the pipeline with no clicks, which is the demo; with
no daemon (``deer-pipeline run``, tests) the sensor does nothing.
"""

import json

import dagster as dg

from deer_pipeline.assets.raw_images import raw_images
from deer_pipeline.ingest.fingerprint import Fingerprint, fingerprint_location
from deer_pipeline.jobs import pipeline_job
from deer_pipeline.partitions import camera_locations
from deer_pipeline.resources.images import ImageRootResource

CURSOR_VERSION = 1


def load_cursor(text: str | None) -> dict[str, dict]:
    """Parse the sensor cursor: ``{location key: fingerprint fields}`` (empty if unusable)."""
    if not text:
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return {}
    if not isinstance(data, dict) or data.get("v") != CURSOR_VERSION:
        return {}
    locations = data.get("locations")
    return locations if isinstance(locations, dict) else {}


def dump_cursor(state: dict[str, dict]) -> str:
    """Serialize the sensor cursor."""
    return json.dumps({"v": CURSOR_VERSION, "locations": state}, sort_keys=True)


def last_ingested_digest(instance: dg.DagsterInstance, key: str) -> str | None:
    """Return the listing digest of the partition's latest ``raw_images`` materialization."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=raw_images.key, asset_partitions=[key]), limit=1
    ).records
    if not records or records[0].asset_materialization is None:
        return None
    entry = records[0].asset_materialization.metadata.get("listing_digest")
    return entry.value if entry is not None else None


def _state(fp: Fingerprint) -> dict:
    return {
        "digest": fp.digest,
        "files": fp.files,
        "bytes": fp.total_bytes,
        "newest_ns": fp.newest_ctime_ns,
    }


@dg.sensor(
    job=pipeline_job,
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds a partition per new camera folder; runs the pipeline for changed folders.",
)
def new_images_sensor(
    context: dg.SensorEvaluationContext, image_root: ImageRootResource
) -> dg.SensorResult:
    """Add partitions for new folders and request one run per changed, settled location."""
    root = image_root.path()
    if not root.is_dir():
        return dg.SensorResult(skip_reason=f"image root {root} does not exist")
    previous = load_cursor(context.cursor)
    locations = image_root.locations()
    known = set(context.instance.get_dynamic_partitions(camera_locations.name))
    new_keys = [loc.key for loc in locations if loc.key not in known]
    state: dict[str, dict] = {}
    requests, waiting = [], []
    for loc in locations:
        fp = fingerprint_location(root, loc.folder)
        old = previous.get(loc.key)
        if old is not None:
            state[loc.key] = old
            if old.get("digest") == fp.digest:
                continue
        if not fp.settled(image_root.settle_seconds):
            waiting.append(loc.key)
            continue
        state[loc.key] = _state(fp)
        if loc.key in known:
            last = last_ingested_digest(context.instance, loc.key)
            if last == fp.digest or (fp.files == 0 and last is None):
                continue  # ingested already, or empty and never ingested
        elif fp.files == 0:
            continue  # a new empty folder: a partition now, a run when photos arrive
        requests.append(
            dg.RunRequest(
                run_key=f"{loc.key}:{fp.digest[:16]}:{fp.newest_ctime_ns}",
                partition_key=loc.key,
                tags={"deer/launched_by": "new_images_sensor"},
            )
        )
    partitions = [camera_locations.build_add_request(new_keys)] if new_keys else []
    skip = None
    if not requests and not partitions:
        skip = f"still being written: {', '.join(waiting)}" if waiting else "no new images"
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=partitions,
        cursor=dump_cursor(state),
        skip_reason=skip,
    )
