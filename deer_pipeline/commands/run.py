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
import socket
import sys
import time
from pathlib import Path

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
    parser.add_argument(
        "--config",
        default=None,
        metavar="YAML",
        help="Dagster run config file, e.g. resources: {detector: {config: {imgsz: 320}}}",
    )
    parser.add_argument(
        "--demo-images",
        type=int,
        default=DEMO_IMAGES,
        help=f"frames in the demo set made when DEER_IMAGE_ROOT is unset (default {DEMO_IMAGES})",
    )
    parser.set_defaults(func=run_command)


def pipeline_job():
    """Return the pipeline job definition (the target of ``reconstructable``)."""
    from deer_pipeline.definitions import defs
    from deer_pipeline.jobs import PIPELINE_JOB

    return defs.resolve_job_def(PIPELINE_JOB)


def ensure_demo_images(user_image_root: Path | None, images: int) -> None:
    """Generate the synthetic demo set when the user named no image root and none exists yet.

    Args:
        user_image_root: ``DEER_IMAGE_ROOT`` as the user set it (before any defaulting).
        images: how many demo frames to write.
    """
    from deer_pipeline.config import image_root

    root = image_root()
    if user_image_root or (root / "ground_truth.json").exists():
        return
    from deer_pipeline.plugins import generate_dataset

    print(f"DEER_IMAGE_ROOT is unset: generating a synthetic demo set in {root}")
    generate_dataset(root, images=images, locations=DEMO_LOCATIONS, seed=7)
    _wait_until_settled(root)


def _wait_until_settled(root: Path) -> None:
    """Wait until the files just written are older than ingest's settle time.

    Ingest leaves a file alone while it may still be being copied (changed during the last
    ``settle_s`` seconds, by ctime, which cannot be set back); on a fast machine the first run
    would otherwise find the whole demo set pending.
    """
    from deer_pipeline.ingest.ingest import IngestSettings

    newest = max((p.stat().st_ctime for p in root.rglob("*") if p.is_file()), default=0.0)
    remaining = newest + IngestSettings().settle_s - time.time()
    if remaining > 0:
        time.sleep(remaining + 0.1)


def _selected_keys(selection: str | None):
    from deer_pipeline.compat.dagster import resolve_asset_selection
    from deer_pipeline.definitions import defs

    job_keys = set(pipeline_job().asset_layer.executable_asset_keys)
    if not selection:
        return sorted(job_keys, key=str)
    try:
        resolved = resolve_asset_selection(selection, defs.resolve_asset_graph())
    except ValueError as exc:
        raise DeerError(f"invalid --select {selection!r}: {exc}") from exc
    keys = sorted(set(resolved) & job_keys, key=str)
    if not keys:
        raise DeerError(f"--select {selection!r} matches no per-location asset")
    return keys


def _run_config(args: argparse.Namespace) -> dict:
    import yaml

    config: dict = {}
    if args.config:
        try:
            with open(args.config, encoding="utf-8") as handle:
                config = yaml.safe_load(handle) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise DeerError(f"cannot read --config {args.config}: {exc}") from exc
        if not isinstance(config, dict):
            raise DeerError(f"--config {args.config} must hold a mapping")
    config.setdefault("loggers", {"console": {"config": {"log_level": args.log_level}}})
    return config


def release_dead_cli_runs(instance) -> list[str]:
    """Fail runs that an earlier ``deer-pipeline run`` process left STARTED when it died.

    Such runs execute inside the CLI process, with no daemon watching them: if that process is
    killed mid-step, the run stays STARTED and keeps its concurrency slots (``gpu``, ``identity``)
    forever. Each CLI run records its host and pid; a run whose process is gone is marked failed
    and its slots are freed.

    Returns:
        The ids of the runs released.
    """
    import socket

    import dagster as dg
    import psutil

    from deer_pipeline.compat.dagster import fail_dead_run

    released = []
    records = instance.get_run_records(
        dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED], tags={"deer/launched_by": "cli"})
    )
    for record in records:
        tags = record.dagster_run.tags
        if tags.get("deer/cli_host") != socket.gethostname():
            continue
        pid = int(tags.get("deer/cli_pid", "0"))
        if pid and psutil.pid_exists(pid) and pid != os.getpid():
            continue
        fail_dead_run(instance, record.dagster_run, "the deer-pipeline run process died")
        released.append(record.dagster_run.run_id)
    return released


def _demo_models_warning(root, keys) -> str | None:
    """One line when the demo models are about to run on photos not of the synthetic world."""
    from deer_pipeline import config
    from deer_pipeline.demo_models import demo_model_warning

    names = {key.to_user_string() for key in keys}
    detector = config.detector_weights() if "detections" in names else None
    reid = config.reid_weights() if "embeddings" in names else None
    return demo_model_warning(root, detector, reid)


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


def check_reid_weights(spec: str) -> None:
    """Load the re-ID backbone a run would use, before anything is written; one line if it fails.

    A malformed spec, a missing file, a model timm does not know, a checkpoint that does not fit,
    a vector size HNSW cannot index, an ``hf-hub:`` repo that is neither cached nor downloadable:
    each is found here, so ``run`` stops before the database, the demo set or any row.

    Raises:
        DeerError: the weights cannot be used (the loader's reason, on one line).
    """
    from deer_pipeline.vision.backbones import EmbedderWeightsError, parse_spec

    try:
        parsed = parse_spec(spec)
        if parsed.is_timm:
            from deer_pipeline.vision.timm_backbone import load_timm

            load_timm(parsed, download=True)
        elif parsed.kind == "state_dict" and not os.path.isfile(parsed.file):
            raise EmbedderWeightsError(f"re-ID weights not found: {parsed.file}")
    except EmbedderWeightsError as exc:
        raise DeerError(" ".join(str(exc).split())) from exc


def _configured_reid_weights(run_config: dict) -> str:
    """The re-ID weights a run uses: ``--config``'s embedder weights, else DEER_REID_WEIGHTS."""
    from deer_pipeline import config

    resources = run_config.get("resources") or {}
    embedder = (resources.get("embedder") or {}).get("config") or {}
    return str(embedder.get("weights") or config.reid_weights())


def run_command(args: argparse.Namespace) -> int:
    """Run the pipeline for the chosen locations; exit 0 only if every run succeeded."""
    from deer_pipeline.config import image_root_override
    from deer_pipeline.instance import prepare_environment

    user_image_root = image_root_override()
    run_config = _run_config(args)
    weights = _configured_reid_weights(run_config)
    if args.select is None:  # the whole graph, embeddings included: before the database starts
        check_reid_weights(weights)
    urls = prepare_environment()
    keys = _selected_keys(args.select)
    if args.select is not None and any(key.to_user_string() == "embeddings" for key in keys):
        check_reid_weights(weights)  # before the demo set or any row
    ensure_demo_images(user_image_root, args.demo_images)
    import dagster as dg

    from deer_pipeline.commands.outage import run_guarded
    from deer_pipeline.config import database_url_override, deer_home, image_root
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
    warning = _demo_models_warning(root, keys)
    if warning:
        print(warning, file=sys.stderr)
    instance = dg.DagsterInstance.get()
    for run_id in release_dead_cli_runs(instance):
        print(f"released run {run_id}: its deer-pipeline run process had died")
    existing = set(instance.get_dynamic_partitions(camera_locations.name))
    new = [loc.key for loc in locations if loc.key not in existing]
    if new:
        instance.add_dynamic_partitions(camera_locations.name, new)
    failures = 0
    for loc in locations:
        tags = {
            "dagster/partition": loc.key,
            "deer/launched_by": "cli",
            "deer/cli_host": socket.gethostname(),
            "deer/cli_pid": str(os.getpid()),
        }
        result = run_guarded(  # the database going away mid-run: one line, exit 2
            lambda tags=tags: dg.execute_job(
                dg.reconstructable(pipeline_job),
                instance=instance,
                run_config=run_config,
                tags=tags,
                asset_selection=keys,
            ),
            loc.key,
            deer_home(),
            urls.data,
            embedded=database_url_override() is None,
        )
        status = "succeeded" if result.success else "FAILED"
        print(f"{loc.key} ({loc.folder}): run {result.run_id} {status}")
        for line in _summarize(result):
            print(line)
        failures += 0 if result.success else 1
    print(f"{len(locations) - failures}/{len(locations)} runs succeeded")
    return 0 if failures == 0 else 1
