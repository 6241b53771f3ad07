"""The Dagster code location: every asset, resource, job and sensor of deer_pipeline."""

import os

import dagster as dg

from deer_pipeline.assets.benchmark import benchmark
from deer_pipeline.assets.identities import deer_identities
from deer_pipeline.assets.inference import inference
from deer_pipeline.assets.raw_images import raw_images
from deer_pipeline.compat.dagster import apply_pool_wait_fix
from deer_pipeline.jobs import benchmark_job, pipeline_job
from deer_pipeline.resources.database import DatabaseResource
from deer_pipeline.resources.images import ImageRootResource
from deer_pipeline.resources.models import DetectorResource, EmbedderResource
from deer_pipeline.sensors import new_images_sensor

apply_pool_wait_fix()  # runs waiting for a pool slot must sleep, not spin (see the module)


def _database() -> DatabaseResource:
    if os.environ.get("DEER_DATABASE_URL"):
        return DatabaseResource(url=dg.EnvVar("DEER_DATABASE_URL"))
    return DatabaseResource()


defs = dg.Definitions(
    assets=[
        raw_images,
        inference,
        deer_identities,
        benchmark,
    ],
    jobs=[pipeline_job, benchmark_job],
    sensors=[
        new_images_sensor,
    ],
    resources={
        "database": _database(),
        "image_root": ImageRootResource(),
        "detector": DetectorResource(),
        "embedder": EmbedderResource(),
    },
    executor=dg.in_process_executor,
)
