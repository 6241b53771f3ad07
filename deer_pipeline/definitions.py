"""The Dagster code location: every asset, resource, job and sensor of deer_pipeline."""

import os

import dagster as dg

from deer_pipeline.jobs import pipeline_job
from deer_pipeline.resources.database import DatabaseResource


def _database() -> DatabaseResource:
    if os.environ.get("DEER_DATABASE_URL"):
        return DatabaseResource(url=dg.EnvVar("DEER_DATABASE_URL"))
    return DatabaseResource()


defs = dg.Definitions(
    assets=[],
    jobs=[pipeline_job],
    sensors=[],
    resources={"database": _database()},
    executor=dg.in_process_executor,
)
