"""Asset checks of ``raw_images``, ``detections`` and ``embeddings``, per camera location.

Severity follows what the downstream assets would suffer (figures come from ``db/quality.py``):

- ``raw_images``: failed files and images without a camera capture time only thin out or blur
  what follows (fewer frames; bursts and first/last seen from file times): WARN.
- ``detections``: a box outside its image is corrupt geometry (crops, exports, Camtrap DP boxes
  out of range): ERROR. Not blocking: Dagster blocks only direct downstream assets, and
  ``embeddings`` comes out of the same step (``deer_identities`` depends on ``embeddings``, whose
  checks block it). Two deer boxes in one frame at IoU >= 0.7 are one animal boxed twice;
  identities would found a phantom deer (a person can merge it): WARN.
- ``embeddings``: a detection without an embedding silently drops out of identities, and a
  vector off the unit sphere skews the gallery means and cosine thresholds: ERROR and blocking.

Each check runs in the same run as its asset (``deer-pipeline run``, backfills, the UI) and shows
next to it in the UI; the checks of ``deer_identities`` live in ``identity_checks.py``.
"""

import dagster as dg

from deer_pipeline.compat.dagster import silence_partitioned_check_preview
from deer_pipeline.db import quality
from deer_pipeline.partitions import camera_locations
from deer_pipeline.resources.database import DatabaseResource

# Partitioned asset checks are a Dagster preview feature (stable enough for a per-location check
# here): said once here instead of on every import. Modules defining such checks import this one
# before their decorators run.
silence_partitioned_check_preview()

FAILED_SHARE_WARN = 0.05
NO_TIME_SHARE_WARN = 0.10
WARN, ERROR = dg.AssetCheckSeverity.WARN, dg.AssetCheckSeverity.ERROR


def _meta(figures: dict) -> dict:
    """Check metadata: plain numbers as they are, example rows as JSON."""
    return {
        k: dg.MetadataValue.json([list(map(_plain, r)) if isinstance(r, tuple) else r for r in v])
        if k == "examples"
        else v
        for k, v in figures.items()
        if v is not None
    }


def _plain(value):
    return value if isinstance(value, int | float | str | list) else str(value)


def _figures(database: DatabaseResource, fn, *args):
    with database.transaction() as cur:
        return fn(cur, *args)


@dg.asset_check(
    asset="raw_images",
    partitions_def=camera_locations,
    description=f"At most {FAILED_SHARE_WARN:.0%} of the location's files failed to read.",
)
def failed_files_share(
    context: dg.AssetCheckExecutionContext, database: DatabaseResource
) -> dg.AssetCheckResult:
    """Share of files of the location that could not be read (status ``failed``)."""
    fig = _figures(database, quality.image_figures, context.partition_key)
    return dg.AssetCheckResult(
        passed=fig["failed_share"] <= FAILED_SHARE_WARN,
        severity=WARN,
        metadata=_meta(fig),
        description=f"{fig['failed']} of {fig['files']} files failed",
    )


@dg.asset_check(
    asset="raw_images",
    partitions_def=camera_locations,
    description=f"At most {NO_TIME_SHARE_WARN:.0%} of ok images lack a camera capture time.",
)
def capture_time_share(
    context: dg.AssetCheckExecutionContext, database: DatabaseResource
) -> dg.AssetCheckResult:
    """Share of ok images with no capture time, or only the file's modification time."""
    fig = _figures(database, quality.image_figures, context.partition_key)
    missing = fig["without_capture_time"] + fig["time_from_file_mtime"]
    return dg.AssetCheckResult(
        passed=fig["without_capture_time_share"] <= NO_TIME_SHARE_WARN,
        severity=WARN,
        metadata=_meta(fig),
        description=f"{missing} of {fig['ok_images']} images have no camera capture time",
    )


@dg.asset_check(
    asset="detections",
    partitions_def=camera_locations,
    description="Every box lies inside its image (1 px tolerance).",
)
def boxes_inside_image(
    context: dg.AssetCheckExecutionContext, database: DatabaseResource
) -> dg.AssetCheckResult:
    """Boxes reaching outside their image are corrupt geometry."""
    fig = _figures(database, quality.boxes_outside, context.partition_key)
    return dg.AssetCheckResult(
        passed=fig["outside"] == 0,
        severity=ERROR,
        metadata=_meta(fig),
        description=f"{fig['outside']} of {fig['boxes']} boxes reach outside their image",
    )


@dg.asset_check(
    asset="detections",
    partitions_def=camera_locations,
    description=f"No two deer boxes in one frame overlap at IoU >= {quality.DUPLICATE_IOU}.",
)
def no_duplicate_deer_boxes(
    context: dg.AssetCheckExecutionContext, database: DatabaseResource
) -> dg.AssetCheckResult:
    """One animal boxed twice (e.g. as doe and as buck) becomes two deer downstream."""
    fig = _figures(database, quality.duplicate_boxes, context.partition_key)
    return dg.AssetCheckResult(
        passed=fig["pairs"] == 0,
        severity=WARN,
        metadata=_meta(fig),
        description=f"{fig['pairs']} overlapping box pairs in {fig['frames']} frames",
    )


def _last_embedded_versions(context, key: str) -> tuple[str, str] | None:
    """(embedder, detector) versions of the partition's last ``embeddings`` materialization."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("embeddings"), asset_partitions=[key]), limit=1
    ).records
    if not records:
        return None
    meta = records[0].asset_materialization.metadata
    try:
        return meta["model_version"].value, meta["detector_model_version"].value
    except KeyError:
        return None


@dg.asset_check(
    asset="embeddings",
    partitions_def=camera_locations,
    blocking=True,
    description="Every detection the embeddings ran on has one embedding.",
)
def one_embedding_per_detection(
    context: dg.AssetCheckExecutionContext, database: DatabaseResource
) -> dg.AssetCheckResult:
    """Detections without an embedding would drop out of identities unseen: blocks them."""
    key = context.partition_key
    versions = _last_embedded_versions(context, key)
    fig = _figures(database, quality.embedding_coverage, key, versions)
    return dg.AssetCheckResult(
        passed=fig["missing"] == 0,
        severity=ERROR,
        metadata=_meta(fig),
        description=f"{fig['missing']} of {fig['detections']} detections lack an embedding",
    )


@dg.asset_check(
    asset="embeddings",
    partitions_def=camera_locations,
    blocking=True,
    description=f"Every embedding has unit L2 norm (within {quality.NORM_TOLERANCE}).",
)
def unit_norm(
    context: dg.AssetCheckExecutionContext, database: DatabaseResource
) -> dg.AssetCheckResult:
    """Vectors off the unit sphere skew gallery means and thresholds: blocks identities."""
    fig = _figures(database, quality.embedding_norms, context.partition_key)
    return dg.AssetCheckResult(
        passed=fig["not_unit"] == 0,
        severity=ERROR,
        metadata=_meta(fig),
        description=f"{fig['not_unit']} of {fig['embeddings']} embeddings are not unit length",
    )


PIPELINE_CHECKS = [
    failed_files_share,
    capture_time_share,
    boxes_inside_image,
    no_duplicate_deer_boxes,
    one_embedding_per_detection,
    unit_norm,
]
