"""``deer-pipeline run``: materialize the asset graph for camera locations as real Dagster runs.

Discovers the locations under ``DEER_IMAGE_ROOT`` (a new folder is a new partition), registers
them as ``camera_locations`` partitions in the instance, and executes the pipeline job once per
location against the instance in ``DAGSTER_HOME``: the runs, their logs and metadata are the same
ones the UI shows. With ``DEER_IMAGE_ROOT`` unset and no demo images yet, a small synthetic demo
set is generated first.
"""

from __future__ import annotations

import argparse
import os

from deer_pipeline.errors import DeerError

DEMO_IMAGES = 240
DEMO_LOCATIONS = 3


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``run`` command."""
    parser = subparsers.add_parser("run", help="materialize the pipeline for camera locations")
    parser.add_argument(
        "--location",
        action="append",
        dest="locations",
        metavar="KEY",
        help="partition key or folder name (repeatable); default: every location",
    )
    parser.add_argument(
        "--select",
        default=None,
        help="Dagster asset selection, e.g. 'raw_images' or 'raw_images+' (default: all)",
    )
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="console log level of the runs (the UI keeps every event; default WARNING)",
    )
    parser.set_defaults(func=run_command)


def pipeline_job():
    """Return the pipeline job definition (the target of ``reconstructable``)."""
    from deer_pipeline.definitions import defs
    from deer_pipeline.jobs import PIPELINE_JOB

    return defs.resolve_job_def(PIPELINE_JOB)


def _ensure_demo_images() -> None:
    from deer_pipeline.config import image_root

    root = image_root()
    if os.environ.get("DEER_IMAGE_ROOT") or (root / "ground_truth.json").exists():
        return
    from deer_pipeline.synthetic import generate_dataset

    print(f"DEER_IMAGE_ROOT is unset: generating a synthetic demo set in {root}")
    generate_dataset(root, images=DEMO_IMAGES, locations=DEMO_LOCATIONS, seed=7)


def _selected_keys(selection: str | None):
    import dagster as dg

    from deer_pipeline.definitions import defs

    job_keys = set(pipeline_job().asset_layer.executable_asset_keys)
    if not selection:
        return sorted(job_keys, key=str)
    try:
        resolved = dg.AssetSelection.from_string(selection).resolve(defs.resolve_asset_graph())
    except Exception as exc:  # Dagster raises several types for a bad selection string
        raise DeerError(f"invalid --select {selection!r}: {exc}") from exc
    keys = sorted(set(resolved) & job_keys, key=str)
    if not keys:
        raise DeerError(f"--select {selection!r} matches no per-location asset")
    return keys


def _summarize(result) -> list[str]:
    lines = []
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        counts = [
            f"{label}={entry.value}"
            for label, entry in mat.metadata.items()
            if type(getattr(entry, "value", None)) is int
        ]
        lines.append(f"  {mat.asset_key.to_user_string()}: {' '.join(counts) or 'materialized'}")
    return lines


def run_command(args: argparse.Namespace) -> int:
    """Run the pipeline for the chosen locations; exit 0 only if every run succeeded."""
    from deer_pipeline.instance import prepare_environment

    prepare_environment()
    _ensure_demo_images()
    import dagster as dg

    from deer_pipeline.config import image_root
    from deer_pipeline.ingest.locations import discover_locations
    from deer_pipeline.partitions import camera_locations

    root = image_root()
    locations = discover_locations(root)
    if not locations:
        raise DeerError(f"no camera location folders under {root}")
    if args.locations:
        wanted = set(args.locations)
        chosen = [loc for loc in locations if loc.key in wanted or loc.folder in wanted]
        unknown = wanted - {loc.key for loc in chosen} - {loc.folder for loc in chosen}
        if unknown:
            raise DeerError(f"unknown location(s): {', '.join(sorted(unknown))}")
        locations = chosen
    keys = _selected_keys(args.select)
    instance = dg.DagsterInstance.get()
    existing = set(instance.get_dynamic_partitions(camera_locations.name))
    new = [loc.key for loc in locations if loc.key not in existing]
    if new:
        instance.add_dynamic_partitions(camera_locations.name, new)
    failures = 0
    for loc in locations:
        result = dg.execute_job(
            dg.reconstructable(pipeline_job),
            instance=instance,
            run_config={"loggers": {"console": {"config": {"log_level": args.log_level}}}},
            tags={"dagster/partition": loc.key, "deer/launched_by": "cli"},
            asset_selection=keys,
        )
        status = "succeeded" if result.success else "FAILED"
        print(f"{loc.key} ({loc.folder}): run {result.run_id} {status}")
        for line in _summarize(result):
            print(line)
        failures += 0 if result.success else 1
    print(f"{len(locations) - failures}/{len(locations)} runs succeeded")
    return 0 if failures == 0 else 1
