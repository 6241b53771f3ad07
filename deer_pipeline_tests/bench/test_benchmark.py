"""The benchmark asset end to end: every figure, the benchmark_runs row, no scratch rows left."""

import dagster as dg
import torch

from deer_pipeline.assets.benchmark import benchmark
from deer_pipeline.bench.plot import fetch_runs, plot_throughput
from deer_pipeline.db.connect import connect
from deer_pipeline.resources.database import DatabaseResource
from deer_pipeline.resources.models import DetectorResource, EmbedderResource
from deer_pipeline.vision.runtime import resolve_precision

FIELDS = {
    "images", "device", "decode_only_images_per_s", "model_only_images_per_s",
    "e2e_images_per_s", "e2e_vs_model_only", "db_write_share", "write_rows_per_s",
    "bulk_save_objects_rows_per_s", "write_speedup_vs_bulk_save_objects", "peak_memory_mb",
    "detections", "embeddings", "benchmark_run_id", "detector_precision", "embedder_precision",
}  # fmt: skip


def test_benchmark_asset_reports_every_figure(clean_db, tmp_path):
    result = dg.materialize(
        [benchmark],
        instance=dg.DagsterInstance.ephemeral(),
        resources={
            "database": DatabaseResource(),
            "detector": DetectorResource(device="cpu", batch_size=4),
            "embedder": EmbedderResource(device="cpu", batch_size=8, precision="bf16"),
        },
        run_config={
            "ops": {
                "benchmark": {"config": {"images": 6, "width": 640, "height": 360, "batch_size": 3}}
            }
        },
    )
    assert result.success
    details = result.asset_materializations_for_node("benchmark")[0].metadata["details"].value
    assert FIELDS <= set(details)
    assert details["images"] == 6 and details["detections"] == details["embeddings"] > 0
    # the precision each model ran in: auto resolved on this CPU, and bf16 forced on the embedder
    auto = resolve_precision("auto", torch.device("cpu"))
    assert (details["detector_precision"], details["embedder_precision"]) == (auto, "bf16")
    metadata = result.asset_materializations_for_node("benchmark")[0].metadata
    assert metadata["embedder_precision"].value == "bf16"
    for key in (
        "decode_only_images_per_s",
        "model_only_images_per_s",
        "e2e_images_per_s",
        "write_rows_per_s",
        "bulk_save_objects_rows_per_s",
        "peak_memory_mb",
    ):
        assert details[key] > 0, key
    assert 0 < details["db_write_share"] < 1
    # two passes of each kind, the best reported
    assert details["repeats"] == 2
    assert details["e2e_images_per_s"] == max(details["e2e_images_per_s_each"])
    assert details["model_only_images_per_s"] == max(details["model_only_images_per_s_each"])
    assert len(details["e2e_images_per_s_each"]) == 2
    assert details["peak_memory_mb"] <= details["peak_memory_mb_with_model_only"]

    conn = connect(clean_db.data)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM images")  # the scratch location is gone
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'legacy_bench%%'")
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT device, images, e2e_images_per_s FROM benchmark_runs")
        assert cur.fetchall() == [(details["device"], 6, details["e2e_images_per_s"])]
    runs = fetch_runs(conn)
    conn.close()
    png = plot_throughput(runs, tmp_path / "throughput.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
