"""``benchmark``: throughput per stage on a fixed synthetic sample, as metadata over time.

Not partitioned: one materialization is one measurement (``deer_pipeline/bench/runner.py``) on
the configured models and device, also recorded in ``benchmark_runs``; the throughput-over-time
PNG in ``$DEER_HOME/reports`` is redrawn from that table each time.
"""

import dagster as dg
from pydantic import Field

from deer_pipeline.bench.plot import plot_recorded_runs
from deer_pipeline.bench.runner import BenchSample, ensure_sample, run_benchmark
from deer_pipeline.config import deer_home
from deer_pipeline.pools import GPU_POOL
from deer_pipeline.resources.database import DatabaseResource
from deer_pipeline.resources.models import DetectorResource, EmbedderResource

BENCHMARK_GROUP = "benchmarks"
PLOTTED = (
    "e2e_images_per_s", "model_only_images_per_s", "decode_only_images_per_s", "db_write_share",
    "e2e_vs_model_only", "write_speedup_vs_bulk_save_objects", "write_rows_per_s",
    "bulk_save_objects_rows_per_s", "peak_memory_mb", "images", "detections", "embeddings",
)  # fmt: skip


class BenchmarkConfig(dg.Config):
    """Size of the fixed sample and of the batches."""

    images: int = Field(default=100, description="Synthetic images in the sample")
    width: int = Field(default=1920, description="Frame width of the sample")
    height: int = Field(default=1080, description="Frame height of the sample")
    batch_size: int = Field(default=32, description="Images per batch in the end-to-end pass")
    repeats: int = Field(
        default=2, ge=1, description="Model-only and end-to-end passes each (the best counts)"
    )


def throughput_plot(database: DatabaseResource):
    """Redraw the throughput-over-time PNG from ``benchmark_runs``; return its path."""
    return plot_recorded_runs(database.urls().data, deer_home() / "reports" / "throughput.png")


@dg.asset(group_name=BENCHMARK_GROUP, pool=GPU_POOL, kinds={"pytorch", "postgres"})
def benchmark(
    context: dg.AssetExecutionContext,
    config: BenchmarkConfig,
    database: DatabaseResource,
    detector: DetectorResource,
    embedder: EmbedderResource,
) -> dg.MaterializeResult:
    """Decode-only, model-only and end-to-end images/s, write share and write-speed ratio."""
    sample = BenchSample(images=config.images, width=config.width, height=config.height)
    paths = ensure_sample(deer_home() / "bench", sample)
    result = run_benchmark(
        database.urls(),
        detector.get(),
        embedder.get(),
        paths,
        batch_size=config.batch_size,
        repeats=config.repeats,
    )
    plot = throughput_plot(database)
    context.log.info(
        f"e2e {result['e2e_images_per_s']} images/s, model-only "
        f"{result['model_only_images_per_s']}, write share {result['db_write_share']}"
    )
    metadata = {key: result[key] for key in PLOTTED if result.get(key) is not None}
    metadata.update(
        device=result["device"],
        detector_precision=result["detector_precision"],
        embedder_precision=result["embedder_precision"],
        benchmark_run_id=result["benchmark_run_id"],
        throughput_plot=dg.MetadataValue.path(str(plot)),
        details=dg.MetadataValue.json(result),
    )
    return dg.MaterializeResult(metadata=metadata)


defs = dg.Definitions(assets=[benchmark])
