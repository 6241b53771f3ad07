"""The Dagster code location: every asset, resource, job and sensor of deer_pipeline."""

import os

import dagster as dg

from deer_pipeline import dagster_fixes
from deer_pipeline.assets.benchmark import benchmark
from deer_pipeline.assets.camtrap_dp import camtrap_dp, every_deer_is_an_individual
from deer_pipeline.assets.checks import PIPELINE_CHECKS
from deer_pipeline.assets.identities import deer_identities
from deer_pipeline.assets.identity_checks import IDENTITY_CHECKS
from deer_pipeline.assets.inference import inference
from deer_pipeline.assets.raw_images import raw_images
from deer_pipeline.jobs import benchmark_job, pipeline_job
from deer_pipeline.resources.camtrap import CamtrapResource
from deer_pipeline.resources.database import DatabaseResource
from deer_pipeline.resources.images import ImageRootResource
from deer_pipeline.resources.models import DetectorResource, EmbedderResource
from deer_pipeline.sensors import new_images_sensor

dagster_fixes.apply()  # runs waiting for a pool slot must sleep, not spin (see the module)


def _database() -> DatabaseResource:
    if os.environ.get("DEER_DATABASE_URL"):
        return DatabaseResource(url=dg.EnvVar("DEER_DATABASE_URL"))
    return DatabaseResource()


defs = dg.Definitions(
    assets=[
        raw_images,
        inference,
        deer_identities,
        camtrap_dp,
        benchmark,
    ],
    asset_checks=[*PIPELINE_CHECKS, *IDENTITY_CHECKS, every_deer_is_an_individual],
    jobs=[pipeline_job, benchmark_job],
    sensors=[
        new_images_sensor,
    ],
    resources={
        "database": _database(),
        "image_root": ImageRootResource(),
        "detector": DetectorResource(),
        "embedder": EmbedderResource(),
        "camtrap": CamtrapResource(),
    },
    executor=dg.in_process_executor,
)
