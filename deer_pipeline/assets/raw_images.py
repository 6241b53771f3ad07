"""``raw_images``: one camera location's files as ``images`` rows (see ``deer_pipeline.ingest``).

The partition key maps back to its folder through the folders under the image root, or, for a
folder that has since gone, through the ``locations`` table (its rows are then marked missing).
The materialization's metadata says what the run did: rows by status, files new, changed,
unchanged, missing and pending, skipped entries by reason, speed, and the failed files.
"""

import dagster as dg

from deer_pipeline.assets.quality_checks import checks_for
from deer_pipeline.ingest import store
from deer_pipeline.ingest.ingest import IngestReport, ingest_location
from deer_pipeline.ingest.locations import Location
from deer_pipeline.jobs import PIPELINE_GROUP
from deer_pipeline.partitions import camera_locations
from deer_pipeline.resources.database import DatabaseResource
from deer_pipeline.resources.images import ImageRootResource

MAX_FAILURE_ROWS = 20
STATUSES = ("ok", "failed", "duplicate", "missing")


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def failures_markdown(failures: list[tuple[str, str]], total: int) -> str:
    """Render failed files as a small markdown table (at most ``MAX_FAILURE_ROWS`` rows)."""
    if not failures:
        return "No failed files."
    lines = ["| file | reason |", "| --- | --- |"]
    lines += [
        f"| {_cell(path)} | {_cell(reason)} |" for path, reason in failures[:MAX_FAILURE_ROWS]
    ]
    if total > MAX_FAILURE_ROWS:
        lines.append(f"| ... | and {total - MAX_FAILURE_ROWS} more |")
    return "\n".join(lines)


def _resolve(key: str, image_root: ImageRootResource, database: DatabaseResource) -> Location:
    root = image_root.path()
    if not root.is_dir():
        raise dg.Failure(f"image root {root} does not exist (unmounted drive? DEER_IMAGE_ROOT?)")
    for location in image_root.locations():
        if location.key == key:
            return location
    with database.transaction() as cur:
        folder = store.folder_for_key(cur, key)
    if folder is None:
        raise dg.Failure(f"no folder under {root} for camera location {key!r}")
    return Location(key, folder)


def report_metadata(report: IngestReport) -> dict[str, object]:
    """Build the materialization metadata of an ingest report."""
    counts = report.status_counts
    return {
        "location": report.location.folder,
        **{f"status_{status}": int(counts.get(status, 0)) for status in STATUSES},
        "new": report.new,
        "changed": report.changed,
        "unchanged": report.unchanged,
        "missing": report.missing,
        "pending": report.pending,
        "files_read": report.read,
        "rows_written": report.rows_written,
        "bursts": report.bursts,
        "identical_in_other_locations": report.copies_elsewhere,
        "skipped": sum(report.skipped.values()),
        "skipped_by_reason": dg.MetadataValue.json(dict(sorted(report.skipped.items()))),
        "images_per_s": round(report.images_per_s, 1),
        "seconds": round(report.seconds, 3),
        "read_seconds": round(report.read_seconds, 3),
        "megabytes_read": round(report.bytes_read / 1e6, 1),
        "failures": dg.MetadataValue.md(
            failures_markdown(report.failures, int(counts.get("failed", 0)))
        ),
        "listing_digest": report.listing_digest,
        "scan_notes": dg.MetadataValue.md(
            "\n".join(f"- {_cell(note)}" for note in report.notes[:MAX_FAILURE_ROWS]) or "None."
        ),
    }


@dg.asset(
    partitions_def=camera_locations,
    group_name=PIPELINE_GROUP,
    kinds={"postgres", "python"},
    description="Images of one camera location: hash, EXIF, size, capture time, bursts, status.",
)
def raw_images(
    context: dg.AssetExecutionContext,
    database: DatabaseResource,
    image_root: ImageRootResource,
) -> dg.MaterializeResult:
    """Ingest the partition's folder incrementally into ``images``."""
    location = _resolve(context.partition_key, image_root, database)
    conn = database.connect()
    try:
        report = ingest_location(conn, image_root.path(), location, image_root.settings())
    finally:
        conn.close()
    if not report.folder_found:
        context.log.warning(f"folder {location.folder!r} is gone: its images are marked missing")
    for note in report.notes[:50]:
        context.log.warning(note)
    context.log.info(
        f"{location.key}: {report.read} files read in {report.seconds:.2f} s "
        f"({report.images_per_s:.0f}/s), {report.rows_written} rows written"
    )
    return dg.MaterializeResult(metadata=report_metadata(report))


CHECKS = checks_for("raw_images")
defs = dg.Definitions(assets=[raw_images], asset_checks=CHECKS)
