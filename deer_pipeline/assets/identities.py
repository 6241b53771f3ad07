"""``deer_identities``: individual deer of one camera location, by re-identification.

The asset re-derives the location's sightings (tracklets within bursts, then constrained
average-linkage clustering with the deer known anywhere, see ``deer_pipeline.reid``) in one
transaction under the identity lock, and in the ``identity`` pool, so locations queue rather than
race for the one shared set of identities. Its metadata says what happened (tracklets, sightings
by method, deer founded, matched and merged, merges refused by each constraint, sex conflicts
inside deer, timings of each stage),
how good it is when the image root holds a synthetic ``ground_truth.json`` (B-cubed precision
and recall, deer found against true, same-frame and cross-sex merges) and links the HTML gallery.
"""

import dagster as dg
from pydantic import Field

from deer_pipeline.assets.quality_checks import checks_for
from deer_pipeline.config import deer_home
from deer_pipeline.exports.gallery import write_gallery
from deer_pipeline.jobs import PIPELINE_GROUP
from deer_pipeline.model_versions import MISSING
from deer_pipeline.partitions import camera_locations
from deer_pipeline.pools import IDENTITY_POOL
from deer_pipeline.reid import calibration as calibrations
from deer_pipeline.reid.calibration import Calibration
from deer_pipeline.reid.identify import IdentityReport, choose_model_version, identify_location
from deer_pipeline.reid.matching import MatchConfig
from deer_pipeline.reid.metrics import evaluate_database
from deer_pipeline.reid.pair_model import PairModel
from deer_pipeline.reid.review import last_reviewed
from deer_pipeline.resources.database import DatabaseResource
from deer_pipeline.resources.images import ImageRootResource
from deer_pipeline.resources.models import EmbedderResource

METHODS = ("burst", "match", "new", "manual")
_DEFAULTS = MatchConfig()


class IdentityConfig(dg.Config):
    """Run settings of ``deer_identities``; the defaults are ``MatchConfig``'s (see its docs)."""

    match_threshold: float | None = Field(
        default=None,
        description="Least average-linkage score (mean cosine over every detection pair of two "
        "clusters, plus priors) for one deer; default the embedding model's calibration "
        "(reid/calibration.py)",
    )
    ef_search: int = Field(default=_DEFAULTS.ef_search, description="HNSW candidate list size")
    candidates: int = Field(
        default=_DEFAULTS.candidates,
        description="Nearest neighbours per tracklet (own location exact, others via HNSW)",
    )
    sex_margin: float = Field(
        default=_DEFAULTS.sex_margin,
        description="(winner - runner-up) / all votes at which a sex vote is confident; only "
        "confident votes forbid a merge",
    )
    visit_bonus: float = Field(
        default=_DEFAULTS.visit_bonus,
        description="Prior added to the similarity of detections at one camera at the same moment",
    )
    visit_minutes: float = Field(
        default=_DEFAULTS.visit_minutes,
        description="E-folding time of that prior (camera-trap independence interval, 30 min)",
    )
    visit_window_minutes: float = Field(
        default=_DEFAULTS.visit_window_minutes,
        description="Detections further apart than this get no prior",
    )
    model_version: str | None = Field(
        default=None,
        description="Embedding model to use; default the configured re-ID "
        "weights' when the location has its embeddings, else the one covering most detections",
    )
    pair_model: bool = Field(
        default=True,
        description="Join clusters the pair model (same animal or not, from all the evidence) "
        "calls one animal; the model is the embedding model's calibration's, or this database's "
        "refit on review decisions",
    )
    pair_join_probability: float | None = Field(
        default=None,
        description="Least pair-model probability of one animal to join two clusters; default "
        "the calibration's (pair_join_probability)",
    )
    pair_neighbours: int = Field(
        default=_DEFAULTS.pair_neighbours,
        description="Nearest clusters per cluster the pair pass scores (overall and across "
        "day/night), besides those a candidate edge links",
    )
    gallery: bool = Field(default=True, description="Refresh the HTML gallery of every deer")

    def match_config(self, calibration: Calibration) -> MatchConfig:
        """Return the library settings: this config, the model's calibration where it is silent.

        With the pair pass on, the clustering's threshold is the one fitted together with the
        pair model (``pair_first_pass_threshold``) when the calibration has it.
        """
        return MatchConfig(
            threshold=self.threshold_and_source(calibration)[0],
            ef_search=self.ef_search,
            candidates=self.candidates,
            sex_margin=self.sex_margin,
            visit_bonus=self.visit_bonus,
            visit_minutes=self.visit_minutes,
            visit_window_minutes=self.visit_window_minutes,
            pair_join_probability=self.pair_cut(calibration),
            pair_neighbours=self.pair_neighbours,
        )

    def threshold_and_source(self, calibration: Calibration) -> tuple[float, str]:
        """Return the clustering threshold and where it came from."""
        if self.match_threshold is not None:
            return self.match_threshold, "run config"
        paired = calibration.thresholds.get("pair_first_pass_threshold")
        if self.pair_cut(calibration) is not None and paired is not None:
            return paired, f"{calibration.source} (pair_first_pass_threshold)"
        return calibration.match_threshold, calibration.source

    def pair_cut(self, calibration: Calibration) -> float | None:
        """Return the pair model's joining probability (None: no pair pass)."""
        if not self.pair_model or calibration.pair_model is None:
            return None
        if self.pair_join_probability is not None:
            return self.pair_join_probability
        return calibration.thresholds.get("pair_join_probability")


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
        "deer_merged": report.deer_merged,
        "deer_considered": report.deer_considered,
        "candidate_pairs": report.candidate_pairs,
        "pair_model_joins": report.pair_model_joins,
        "pair_model_candidates": report.pair_model_candidates,
        **{f"merges_refused_{k}": v for k, v in sorted(report.refused.items())},
        "sex_conflict_deer": report.sex_conflict_deer,
        "sex_conflict_tracklets": report.sex_conflict_tracklets,
        "sightings_removed_before": report.removed_sightings,
        "deer_deleted_before": report.deleted_deer,
        "load_seconds": round(report.load_seconds, 3),
        "candidate_seconds": round(report.candidate_seconds, 3),
        "cluster_seconds": round(report.cluster_seconds, 3),
        "write_seconds": round(report.write_seconds, 3),
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
    embedder: EmbedderResource,
) -> dg.MaterializeResult:
    """Re-derive the partition's sightings and refresh the gallery report."""
    key = context.partition_key
    configured = embedder.model_version()  # the run's re-ID weights, without loading them
    conn = database.connect()
    try:
        with conn.cursor() as cur:
            version = config.model_version or choose_model_version(
                cur, key, None if configured == MISSING else configured
            )
            beside = embedder.weights_file() if version == configured else None
            calibration = calibrations.resolve(cur, version or configured, beside)
        conn.rollback()
        match = config.match_config(calibration)
        pairs = None
        if match.pair_join_probability is not None:
            pairs = PairModel.from_json(calibration.pair_model)
        report = identify_location(conn, key, match, model_version=version, pair_model=pairs)
        metadata = report_metadata(report) | {
            "match_threshold": match.threshold,
            "match_threshold_source": config.threshold_and_source(calibration)[1],
            "sex_margin": match.sex_margin,
            "pair_model_source": calibration.source if pairs is not None else "none",
            "pair_join_probability": (match.pair_join_probability if pairs is not None else "none"),
            "pair_join_probability_source": (
                "none"
                if pairs is None
                else "run config"
                if config.pair_join_probability is not None
                else calibration.source
            ),
        }
        truth = image_root.path() / "ground_truth.json"
        with conn.cursor() as cur:
            reviewed = last_reviewed(cur)
            metadata["last_reviewed"] = reviewed["at"] if reviewed else "never"
            metadata["review_decisions"] = reviewed["decisions"] if reviewed else 0
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


CHECKS = checks_for("deer_identities")
defs = dg.Definitions(assets=[deer_identities], asset_checks=CHECKS)
