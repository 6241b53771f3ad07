"""``deer_identities``: individual deer of one camera location, by re-identification.

The asset re-derives the location's sightings (tracklets within bursts, then the pgvector gallery
of known deer, see ``deer_pipeline.reid``) in one transaction under the identity lock, and in the
``identity`` pool, so locations queue rather than race for the one shared gallery. Its metadata
says what happened (tracklets, sightings by method, deer founded and matched, matching speed),
how good it is when the image root holds a synthetic ``ground_truth.json`` (B-cubed precision
and recall, deer found against true, same-frame and cross-sex merges) and links the HTML gallery.
"""

import os

import dagster as dg
from pydantic import Field

from deer_pipeline.config import deer_home, reid_weights
from deer_pipeline.exports.gallery import write_gallery
from deer_pipeline.jobs import PIPELINE_GROUP
from deer_pipeline.partitions import camera_locations
from deer_pipeline.pools import IDENTITY_POOL
from deer_pipeline.reid.identify import IdentityReport, identify_location
from deer_pipeline.reid.matching import MatchConfig, default_match_config
from deer_pipeline.reid.metrics import evaluate_database
from deer_pipeline.resources.database import DatabaseResource
from deer_pipeline.resources.images import ImageRootResource

METHODS = ("burst", "match", "new", "manual")


class IdentityConfig(dg.Config):
    """Run settings of ``deer_identities`` (defaults suit the project's trained model)."""

    match_threshold: float | None = Field(
        default=None,
        description="Cosine similarity to join a known deer; default: the value "
        "the trainer stored next to the re-ID weights, else 0.8",
    )
    ef_search: int = Field(default=100, description="HNSW candidate list size")
    candidates: int = Field(default=10, description="Nearest deer fetched per tracklet")
    model_version: str | None = Field(
        default=None,
        description="Embedding model to use; default the configured re-ID "
        "weights' when the location has its embeddings, else the one covering most detections",
    )
    gallery: bool = Field(default=True, description="Refresh the HTML gallery of every deer")


def configured_embedding_version() -> str | None:
    """Version of the configured re-ID weights (as the embedder names it), without loading them."""
    spec = reid_weights()
    if os.path.isfile(spec):
        from deer_pipeline.vision.runtime import file_version

        return file_version(spec)
    return "random-0" if spec == "random" else None  # EmbedderConfig's default seed is 0


def report_metadata(report: IdentityReport) -> dict[str, object]:
    """Build the materialization metadata of one identity run."""
    return {
        "embedding_model": report.model_version or "none",
        "detections": report.detections,
        "tracklets": report.tracklets,
        "tracklets_matched": report.tracklets_matched,
        **{f"sightings_{m}": int(report.sightings.get(m, 0)) for m in METHODS},
        "deer_new": report.deer_new,
        "deer_matched": report.deer_matched,
        "sightings_removed_before": report.removed_sightings,
        "deer_deleted_before": report.deleted_deer,
        "match_seconds": round(report.match_seconds, 3),
        "ms_per_tracklet": round(report.ms_per_tracklet, 2),
        "seconds": round(report.seconds, 3),
    }


@dg.asset(
    partitions_def=camera_locations,
    group_name=PIPELINE_GROUP,
    deps=[dg.AssetKey("embeddings")],
    pool=IDENTITY_POOL,
    kinds={"postgres", "python"},
    description="Individual deer: sightings of this location matched to the gallery of deer.",
)
def deer_identities(
    context: dg.AssetExecutionContext,
    config: IdentityConfig,
    database: DatabaseResource,
    image_root: ImageRootResource,
) -> dg.MaterializeResult:
    """Re-derive the partition's sightings and refresh the gallery report."""
    key = context.partition_key
    base = default_match_config()
    match = MatchConfig(
        threshold=config.match_threshold if config.match_threshold is not None else base.threshold,
        ef_search=config.ef_search,
        candidates=config.candidates,
    )
    conn = database.connect()
    try:
        report = identify_location(
            conn,
            key,
            match,
            model_version=config.model_version,
            preferred_version=configured_embedding_version(),
        )
        metadata = report_metadata(report) | {"match_threshold": match.threshold}
        truth = image_root.path() / "ground_truth.json"
        with conn.cursor() as cur:
            if truth.is_file():
                here = evaluate_database(cur, truth, [key]).as_dict()
                everywhere = evaluate_database(cur, truth).as_dict()
                metadata |= {f"quality_{k}": v for k, v in here.items()}
                metadata["quality_all_locations"] = dg.MetadataValue.json(everywhere)
            if config.gallery:
                page = write_gallery(cur, image_root.path(), deer_home() / "reports")
                metadata["gallery"] = dg.MetadataValue.path(page["path"])
                metadata["gallery_deer"] = page["deer"]
        conn.rollback()  # the reads above hold no locks worth keeping
    finally:
        conn.close()
    if report.model_version is None:
        context.log.warning(f"{key}: no embeddings yet; nothing to identify")
    context.log.info(
        f"{key}: {report.tracklets} tracklets, {report.deer_new} new deer, "
        f"{report.deer_matched} known deer matched, {report.ms_per_tracklet:.1f} ms/tracklet"
    )
    return dg.MaterializeResult(metadata=metadata)
