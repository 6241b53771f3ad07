"""The Dagster code location: every asset, resource, job and sensor of deer_pipeline."""

import dagster as dg

from deer_pipeline.assets.benchmark import benchmark
from deer_pipeline.assets.camtrap_dp import camtrap_dp, every_deer_is_an_individual
from deer_pipeline.assets.checks import PIPELINE_CHECKS
from deer_pipeline.assets.herd_survey import counts_mostly_reviewed, herd_survey
from deer_pipeline.assets.identities import deer_identities
from deer_pipeline.assets.identity_checks import IDENTITY_CHECKS
from deer_pipeline.assets.inference import inference
from deer_pipeline.assets.raw_images import raw_images
from deer_pipeline.compat.dagster import apply_pool_wait_fix
from deer_pipeline.jobs import benchmark_job, pipeline_job
from deer_pipeline.resources import project_resources
from deer_pipeline.sensors import new_images_sensor

apply_pool_wait_fix()  # runs waiting for a pool slot must sleep, not spin (see the module)


defs = dg.Definitions(
    assets=[
        raw_images,
        inference,
        deer_identities,
        camtrap_dp,
        herd_survey,
        benchmark,
    ],
    asset_checks=[
        *PIPELINE_CHECKS,
        *IDENTITY_CHECKS,
        every_deer_is_an_individual,
        counts_mostly_reviewed,
    ],
    jobs=[pipeline_job, benchmark_job],
    sensors=[
        new_images_sensor,
    ],
    resources=project_resources(),
    executor=dg.in_process_executor,
)
