"""``deer-pipeline export``: megadetector, sightings, camtrap-dp and gallery."""

from __future__ import annotations

import argparse
import json

from deer_pipeline.errors import DeerError
from deer_pipeline.exports.camtrap_dp import DEFAULT_SCIENTIFIC_NAME, DEFAULT_TIMEZONE


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``export`` command group."""
    parser = subparsers.add_parser("export", help="export detections, sightings and pictures")
    actions = parser.add_subparsers(dest="export_command", required=True, metavar="FORMAT")
    md = actions.add_parser(
        "megadetector", help="MegaDetector batch-output JSON (Timelapse, AddaxAI)"
    )
    md.add_argument("out", help="output .json file")
    md.add_argument("--detector", help="name for info.detector (default: the weights file name)")
    md.set_defaults(func=_megadetector)
    csv = actions.add_parser("sightings", help="one CSV row per sighting")
    csv.add_argument("out", help="output .csv file")
    csv.set_defaults(func=_sightings)
    camtrap = actions.add_parser(
        "camtrap-dp", help="Camtrap DP 1.0.2 package with individualID from the identities"
    )
    camtrap.add_argument("out", help="output folder")
    camtrap.add_argument(
        "--timezone",
        default=DEFAULT_TIMEZONE,
        help=f"IANA time zone of the cameras' clocks (default {DEFAULT_TIMEZONE})",
    )
    camtrap.add_argument(
        "--scientific-name",
        default=DEFAULT_SCIENTIFIC_NAME,
        help=f"scientificName of every observation (default {DEFAULT_SCIENTIFIC_NAME})",
    )
    camtrap.add_argument(
        "--coordinates",
        metavar="JSON",
        help='file mapping a location (key or folder) to [latitude, longitude]: {"Creek": [..]}',
    )
    camtrap.add_argument("--contributor", default=None, help="contact named in datapackage.json")
    camtrap.add_argument("--title", default=None, help="project title in datapackage.json")
    camtrap.set_defaults(func=_camtrap)
    gallery = actions.add_parser(
        "gallery", help="HTML page of every deer with crops ($DEER_HOME/reports)"
    )
    gallery.add_argument("--per-deer", type=int, default=6, help="crops per deer")
    gallery.set_defaults(func=_gallery)


def _cursor_call(fn, *args):
    from deer_pipeline.db.connect import data_connection

    conn = data_connection()
    try:
        with conn.cursor() as cur:
            return fn(cur, *args)
    finally:
        conn.close()


def _megadetector(args: argparse.Namespace) -> int:
    from pathlib import Path

    from deer_pipeline.config import detector_weights
    from deer_pipeline.exports.megadetector import write_megadetector

    detector = args.detector or Path(detector_weights()).name
    counts = _cursor_call(write_megadetector, args.out, detector)
    print(
        f"wrote {counts['path']}: {counts['images']} images, {counts['detections']} "
        f"detections, {counts['failed']} failed images"
    )
    return 0


def _sightings(args: argparse.Namespace) -> int:
    from deer_pipeline.exports.sightings_csv import write_sightings_csv

    counts = _cursor_call(write_sightings_csv, args.out)
    print(
        f"wrote {counts['path']}: {counts['sightings']} sightings of {counts['deer']} deer at "
        f"{counts['locations']} locations"
    )
    return 0


def load_coordinates(path: str | None) -> dict[str, tuple[float, float]]:
    """Read a ``{"location": [latitude, longitude]}`` JSON file (one-line error if malformed)."""
    if not path:
        return {}
    try:
        raw = json.loads(open(path, encoding="utf-8").read())
        return {str(k): (float(v[0]), float(v[1])) for k, v in raw.items()}
    except (OSError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise DeerError(
            f'cannot read --coordinates {path}: expected {{"location": [lat, lon]}} ({exc})'
        ) from exc


def _camtrap(args: argparse.Namespace) -> int:
    from deer_pipeline.exports.camtrap_dp import CamtrapSettings, write_camtrap_dp

    extra = {"contributor": args.contributor, "project_title": args.title}
    settings = CamtrapSettings(
        timezone=args.timezone,
        scientific_name=args.scientific_name,
        coordinates=load_coordinates(args.coordinates),
        **{k: v for k, v in extra.items() if v},
    )
    settings.zone()
    counts = _cursor_call(write_camtrap_dp, args.out, settings)
    print(
        f"wrote {counts['path']}: {counts['deployments']} deployments, {counts['media']} media, "
        f"{counts['observations']} observations of {counts['individuals']} individuals "
        f"({counts['event_observations']} event observations, {counts['human_classified']} "
        f"classified by a person)"
    )
    if counts["without_coordinates"]:
        print(
            f"note: {counts['without_coordinates']} deployments have no coordinates "
            "(latitude/longitude 0): pass --coordinates FILE"
        )
    return 0


def _gallery(args: argparse.Namespace) -> int:
    from deer_pipeline.config import deer_home, image_root
    from deer_pipeline.exports.gallery import write_gallery

    counts = _cursor_call(write_gallery, image_root(), deer_home() / "reports", args.per_deer)
    print(
        f"wrote {counts['path']}: {counts['deer']} deer, {counts['thumbnails']} pictures "
        f"({counts['new_thumbnails']} new, {counts['unreadable']} unreadable)"
    )
    return 0
