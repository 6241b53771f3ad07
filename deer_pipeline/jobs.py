"""Jobs: the per-location pipeline (every partitioned asset) and the benchmark."""

import dagster as dg

PIPELINE_JOB = "deer_pipeline_job"
PIPELINE_GROUP = "pipeline"  # group_name of every camera_locations-partitioned asset

pipeline_job = dg.define_asset_job(
    PIPELINE_JOB,
    selection=dg.AssetSelection.groups(PIPELINE_GROUP),
    description="Ingest, detect, embed and identify the deer of one camera location.",
)

BENCHMARK_JOB = "benchmark_job"

benchmark_job = dg.define_asset_job(
    BENCHMARK_JOB,
    selection=dg.AssetSelection.groups("benchmarks"),
    description="Measure decode-only, model-only and end-to-end throughput on a fixed sample.",
)
