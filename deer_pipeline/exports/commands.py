"""``deer-pipeline export megadetector OUT.json | sightings OUT.csv | gallery``."""

from __future__ import annotations

import argparse


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


def _gallery(args: argparse.Namespace) -> int:
    from deer_pipeline.config import deer_home, image_root
    from deer_pipeline.exports.gallery import write_gallery

    counts = _cursor_call(write_gallery, image_root(), deer_home() / "reports", args.per_deer)
    print(
        f"wrote {counts['path']}: {counts['deer']} deer, {counts['thumbnails']} pictures "
        f"({counts['new_thumbnails']} new, {counts['unreadable']} unreadable)"
    )
    return 0
