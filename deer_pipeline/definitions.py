"""The Dagster code location: the asset domains merged with the jobs, sensor and resources.

Each asset module under ``assets/`` holds one domain's assets with their checks, as a
``Definitions`` object (``defs``): ingest (``raw_images``), inference (``detections``,
``embeddings``), identities (``deer_identities``), reports (``camtrap_dp``, ``herd_survey``)
and the benchmark.
The settings of every resource are owned by ``resources/`` (``project_resources``).
"""

import dagster as dg

from deer_pipeline.assets import (
    benchmark,
    camtrap_dp,
    herd_survey,
    identities,
    inference,
    raw_images,
)
from deer_pipeline.compat.dagster import apply_pool_wait_fix
from deer_pipeline.jobs import benchmark_job, pipeline_job
from deer_pipeline.resources import project_resources
from deer_pipeline.sensors import new_images_sensor

apply_pool_wait_fix()  # runs waiting for a pool slot must sleep, not spin (see the module)

DOMAINS = (raw_images, inference, identities, camtrap_dp, herd_survey, benchmark)

defs = dg.Definitions.merge(
    *(domain.defs for domain in DOMAINS),
    dg.Definitions(
        jobs=[pipeline_job, benchmark_job],
        sensors=[new_images_sensor],
        resources=project_resources(),
        executor=dg.in_process_executor,
    ),
)
