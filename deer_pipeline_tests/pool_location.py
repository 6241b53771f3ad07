"""A tiny code location shaped like the pipeline, for the concurrency-pool test.

Per camera location: ``ingest`` (no pool, like ``raw_images``), the ``test_detections`` +
``test_embeddings`` multi-asset in ``GPU_POOL`` (like the inference step) and ``identify`` in
``IDENTITY_POOL``. Each sleeps instead of working, so which steps overlap is decided by Dagster's
queue and pools alone, on the same ``in_process_executor`` as ``deer_pipeline.definitions``. Run
tags stretch the sleeps: ``INGEST_TAG`` for ingest, ``HOLD_TAG`` for the GPU step (to keep a slot
busy until the test kills the run).
"""

import time

import dagster as dg

from deer_pipeline.partitions import camera_locations
from deer_pipeline.pools import GPU_POOL, IDENTITY_POOL

LOCATION = "pool_test"
JOB = "pool_test_job"
HOLD_TAG = "deer_test/hold_gpu_s"
INGEST_TAG = "deer_test/ingest_s"
INGEST_S = 5.0
GPU_S = 1.5
IDENTIFY_S = 0.2


@dg.asset(partitions_def=camera_locations)
def ingest(context: dg.AssetExecutionContext) -> None:
    """Stand-in for ``raw_images``: CPU work that may run for many locations at once."""
    time.sleep(float(context.run.tags.get(INGEST_TAG, INGEST_S)))


@dg.multi_asset(
    specs=[
        dg.AssetSpec("test_detections", deps=[ingest]),
        dg.AssetSpec("test_embeddings", deps=[ingest]),
    ],
    partitions_def=camera_locations,
    pool=GPU_POOL,
)
def infer(context: dg.AssetExecutionContext):
    """Stand-in for the detector + embedder step: holds a ``gpu`` slot while it runs."""
    time.sleep(float(context.run.tags.get(HOLD_TAG, GPU_S)))
    yield dg.MaterializeResult(asset_key="test_detections")
    yield dg.MaterializeResult(asset_key="test_embeddings")


@dg.asset(partitions_def=camera_locations, deps=["test_embeddings"], pool=IDENTITY_POOL)
def identify() -> None:
    """Stand-in for ``deer_identities``: serialized across locations."""
    time.sleep(IDENTIFY_S)


pool_test_job = dg.define_asset_job(JOB, selection=[ingest, infer, identify])

defs = dg.Definitions(
    assets=[ingest, infer, identify],
    jobs=[pool_test_job],
    executor=dg.in_process_executor,
)
