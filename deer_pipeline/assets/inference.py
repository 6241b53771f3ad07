"""``detections`` and ``embeddings``: one streaming pass of a location's images through the models.

Both assets come from one step (the images are decoded once for both) and each can be materialized
alone: ``embeddings`` alone re-embeds the stored boxes of the current detector. Batches are written
while the next batch is inferred, each in its own transaction, by ``db/inference_store.py``
(binary COPY + upsert; the HNSW policy for bulk loads is explained there).

Code versions: the definitions carry the code revision plus the configured models' versions
(``deer_pipeline/model_versions.py``); each materialization records, as its code version, the one
of the models this run really used, so a run config naming other weights is versioned as such.
"""

import contextlib
import resource

import dagster as dg
from pydantic import Field

from deer_pipeline import config
from deer_pipeline.assets.quality_checks import checks_for
from deer_pipeline.compat.dagster import code_version_tags
from deer_pipeline.db.detection_versions import version_to_embed
from deer_pipeline.db.inference_store import (
    DELETE_NOT_OK,
    hnsw_policy,
    location_records,
    stage_tables,
    write_all,
)
from deer_pipeline.demo_models import demo_model_warning
from deer_pipeline.jobs import PIPELINE_GROUP
from deer_pipeline.model_versions import (
    MISSING,
    detections_code_version,
    embeddings_code_version,
    weights_version,
)
from deer_pipeline.partitions import camera_locations
from deer_pipeline.pools import GPU_POOL
from deer_pipeline.resources.database import DatabaseResource
from deer_pipeline.resources.images import ImageRootResource
from deer_pipeline.resources.models import DetectorResource, EmbedderResource
from deer_pipeline.vision.pipeline import InferencePipeline, PipelineConfig
from deer_pipeline.vision.runtime import device_name

DETECTIONS = dg.AssetKey("detections")
EMBEDDINGS = dg.AssetKey("embeddings")


class InferenceConfig(dg.Config):
    """Batching of the streaming pass."""

    batch_size: int = Field(default=32, description="Images per batch (and per transaction)")
    decode_workers: int | None = Field(default=None, description="Decode threads; default CPUs")
    hnsw: str = Field(
        default="auto",
        description="HNSW index on embeddings: auto (rebuild for bulk loads), keep, or rebuild",
    )
    detections_version: str | None = Field(
        default=None,
        description="Embeddings alone: detector version whose stored boxes to embed (e.g. an "
        "imported one); default the configured detector's, else the newest stored",
    )


def _specs() -> list[dg.AssetSpec]:
    # the versions of the models the code location is configured with (see the resources)
    det_version = weights_version(config.detector_weights())
    reid_version = weights_version(config.reid_weights())
    common = dict(group_name=PIPELINE_GROUP, skippable=True, kinds={"pytorch", "postgres"})
    return [
        dg.AssetSpec(
            DETECTIONS,
            deps=["raw_images"],
            code_version=detections_code_version(det_version),
            description="Boxes of deer (doe/fawn/buck) in the location's images.",
            **common,
        ),
        dg.AssetSpec(
            EMBEDDINGS,
            deps=[DETECTIONS],
            code_version=embeddings_code_version(det_version, reid_version),
            description="Re-ID embeddings (halfvec, the model's size: 2048-d for the default "
            "ResNet50) of every detection.",
            **common,
        ),
    ]


@dg.multi_asset(
    specs=_specs(),
    name="inference",
    partitions_def=camera_locations,
    can_subset=True,
    pool=GPU_POOL,
)
def inference(
    context: dg.AssetExecutionContext,
    config: InferenceConfig,
    database: DatabaseResource,
    image_root: ImageRootResource,
    detector: DetectorResource,
    embedder: EmbedderResource,
):
    """Detect and/or embed the partition's ok images in one streaming pass."""
    key = context.partition_key
    selected = context.selected_asset_keys
    detect = DETECTIONS in selected
    det_model = detector.get() if detect else None
    emb_model = embedder.get() if EMBEDDINGS in selected else None
    det_version = det_model.model_version if det_model else None
    conn = database.connect()
    try:
        with conn, conn.cursor() as cur:
            stage_tables(cur)
            if det_version is None:
                det_version = _stored_version(cur, key, config.detections_version, detector)
            records, stored_ids = location_records(
                cur, image_root.path(), key, None if detect else det_version
            )
        pipe_cfg = PipelineConfig(
            batch_size=config.batch_size,
            decode_workers=config.decode_workers,
            embeddings_dtype="float16",
        )
        pipeline = InferencePipeline(det_model, emb_model, pipe_cfg)
        mode = config.hnsw if emb_model is not None else "keep"
        expected = len(records) if detect else sum(len(r[2]) for r in records)
        version, dim = (emb_model.model_version, emb_model.dim) if emb_model else (None, None)
        index_conn = database.connect()
        with (
            contextlib.closing(index_conn),
            hnsw_policy(index_conn, mode, expected, version, dim) as hnsw,
        ):
            write_s, rows = write_all(
                conn, pipeline.run(records), det_version, detect, emb_model, stored_ids
            )
        if detect:
            with conn, conn.cursor() as cur:
                cur.execute(DELETE_NOT_OK, (key, det_version))
                removed_not_ok = cur.rowcount
    finally:
        conn.close()
    times = pipeline.times
    device = det_model.device if det_model else emb_model.device
    figures = {
        **hnsw,
        "images": times.images,
        "failed_images": times.failed,
        "images_per_s": round(times.images_per_s, 2),
        "decode_worker_seconds": round(times.decode_s, 3),
        "detect_seconds": round(times.detect_s, 3),
        "embed_seconds": round(times.embed_s, 3),
        "wait_for_decode_seconds": round(times.wait_input_s, 3),
        "write_seconds": round(write_s, 3),
        "elapsed_seconds": round(times.elapsed_s, 3),
        "db_write_share": round(write_s / times.elapsed_s, 3) if times.elapsed_s else 0.0,
        "decode_long_side": pipeline.decode_long_side,
        "device": device_name(device),
        # The step's process peak (a run's steps are separate processes unless in-process).
        "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    context.log.info(f"{key}: {times.images} images, {rows}, {times.images_per_s:.1f} images/s")
    root = image_root.path()  # demo models on real photos: said in the metadata (and by the CLI)
    det_demo = detect and demo_model_warning(root, detector.detector_config().weights, None)
    emb_demo = emb_model and demo_model_warning(root, None, embedder.embedder_config().weights)
    if detect:
        yield dg.MaterializeResult(
            asset_key=DETECTIONS,
            metadata={
                **figures,
                "detections": rows["detections"],
                "model_version": det_version,
                "precision": det_model.precision,
                "removed_for_images_not_ok": removed_not_ok,
                **({"demo_models_warning": det_demo} if det_demo else {}),
            },
            data_version=dg.DataVersion(det_version),
            tags=code_version_tags(detections_code_version(det_version)),
        )
    if emb_model is not None:
        meta = {
            **figures,
            "embeddings": rows["embeddings"],
            "model_version": emb_model.model_version,
            "precision": emb_model.precision,
            "detector_model_version": det_version,
            "weights_kind": emb_model.weights_kind,
            **({"demo_models_warning": emb_demo} if emb_demo else {}),
        }
        if emb_model.warning:
            meta["warning"] = emb_model.warning
            context.log.warning(emb_model.warning)
        yield dg.MaterializeResult(
            asset_key=EMBEDDINGS,
            metadata=meta,
            data_version=dg.DataVersion(f"{det_version}+{emb_model.model_version}"),
            tags=code_version_tags(embeddings_code_version(det_version, emb_model.model_version)),
        )


def _stored_version(cur, key: str, requested: str | None, detector: DetectorResource) -> str:
    """The detector version whose stored boxes to embed, without loading the detector."""
    configured = detector.model_version()
    version = version_to_embed(cur, key, requested, None if configured == MISSING else configured)
    if version is None:
        raise dg.Failure("detector weights not found: cannot tell which stored boxes to embed")
    return version


def _last_embedded_versions(context: dg.AssetCheckExecutionContext) -> tuple[str, str] | None:
    """(embedder, detector) versions of the partition's last ``embeddings`` materialization."""
    key = context.partition_key
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=EMBEDDINGS, asset_partitions=[key]), limit=1
    ).records
    if not records:
        return None
    meta = records[0].asset_materialization.metadata
    try:
        return meta["model_version"].value, meta["detector_model_version"].value
    except KeyError:
        return None


CHECKS = [
    *checks_for("detections"),
    *checks_for("embeddings", {"embedded_versions": lambda c: (_last_embedded_versions(c),)}),
]
defs = dg.Definitions(assets=[inference], asset_checks=CHECKS)
