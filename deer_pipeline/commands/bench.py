"""``deer-pipeline bench``: the benchmark asset's measurement, headless; last line is JSON.

With ``--materialize`` the measurement runs as a Dagster run of the ``benchmark`` asset instead,
so it also appears in the UI with its metadata plotted over time.
"""

from __future__ import annotations

import argparse
import json
import sys

from deer_pipeline.vision.runtime import PRECISIONS


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``bench`` command."""
    parser = subparsers.add_parser("bench", help="measure throughput per stage (JSON last line)")
    parser.add_argument("--images", type=int, default=200, help="synthetic 1920x1080 images")
    parser.add_argument("--batch-size", type=int, default=32, help="images per batch")
    parser.add_argument(
        "--repeats",
        type=_positive,
        default=2,
        help="passes of each kind; the best counts (default 2)",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=None,
        help="the models' arithmetic (default DEER_PRECISION, else auto: bf16 on CPUs with "
        "bfloat16 units, fp16 on CUDA, else fp32)",
    )
    parser.add_argument(
        "--plot",
        default=None,
        metavar="PNG",
        help="also draw throughput across all recorded runs to this file",
    )
    parser.add_argument(
        "--materialize",
        action="store_true",
        help="run it as a Dagster run of the benchmark asset (seen in the UI)",
    )
    parser.set_defaults(func=bench_command)


def _materialize(args: argparse.Namespace) -> dict:
    import dagster as dg

    from deer_pipeline.commands.run import release_dead_cli_runs
    from deer_pipeline.jobs import BENCHMARK_JOB

    instance = dg.DagsterInstance.get()
    release_dead_cli_runs(instance)
    models = {"config": {"precision": args.precision}}
    result = dg.execute_job(
        dg.reconstructable(benchmark_job_def),
        instance=instance,
        run_config={
            **({"resources": {"detector": models, "embedder": models}} if args.precision else {}),
            "ops": {
                "benchmark": {
                    "config": {
                        "images": args.images,
                        "batch_size": args.batch_size,
                        "repeats": args.repeats,
                    }
                }
            },
            "loggers": {"console": {"config": {"log_level": "WARNING"}}},
        },
        tags={"deer/launched_by": "cli"},
    )
    if not result.success:
        print(f"benchmark run {result.run_id} failed", file=sys.stderr)
        return {}
    event = result.get_asset_materialization_events()[0]
    details = event.materialization.metadata["details"].value
    print(f"{BENCHMARK_JOB} run {result.run_id} succeeded")
    return details


def benchmark_job_def():
    """Return the benchmark job definition (the target of ``reconstructable``)."""
    from deer_pipeline.definitions import defs
    from deer_pipeline.jobs import BENCHMARK_JOB

    return defs.resolve_job_def(BENCHMARK_JOB)


def bench_command(args: argparse.Namespace) -> int:
    """Measure, record in ``benchmark_runs`` and print the figures as one JSON object."""
    from pathlib import Path

    from deer_pipeline.instance import prepare_environment

    urls = prepare_environment()
    if args.materialize:
        result = _materialize(args)
        if not result:
            return 1
    else:
        from deer_pipeline import config
        from deer_pipeline.bench.runner import BenchSample, ensure_sample, run_benchmark
        from deer_pipeline.resources.models import DetectorResource, EmbedderResource

        device = config.device_spec()
        precision = args.precision or config.precision_spec()
        paths = ensure_sample(config.deer_home() / "bench", BenchSample(images=args.images))
        result = run_benchmark(
            urls,
            DetectorResource(
                weights=config.detector_weights(), device=device, precision=precision
            ).get(),
            EmbedderResource(
                weights=config.reid_weights(), device=device, precision=precision
            ).get(),
            paths,
            args.batch_size,
            args.repeats,
        )
    if args.plot:
        from deer_pipeline.bench.plot import plot_recorded_runs

        print(f"throughput plot: {plot_recorded_runs(urls.data, Path(args.plot))}")
    print(json.dumps(result, sort_keys=True))
    return 0
