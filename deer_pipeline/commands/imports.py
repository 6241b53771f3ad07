"""``deer-pipeline import megadetector RESULTS.json``: boxes a user already has, as ``detections``.

See ``deer_pipeline.exports.megadetector_import`` for the matching and class rules. Afterwards
``deer-pipeline run --select 'embeddings+'`` embeds and identifies the imported boxes: the
``embeddings`` step embeds the stored boxes of the configured detector when the location has
them, else the newest imported version (or the one named in its ``detections_version`` config).
"""

from __future__ import annotations

import argparse

from deer_pipeline.errors import DeerError
from deer_pipeline.exports.megadetector_import import DEFAULT_THRESHOLD


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``import`` command group."""
    parser = subparsers.add_parser("import", help="import detections made elsewhere")
    kinds = parser.add_subparsers(dest="import_command", required=True, metavar="FORMAT")
    md = kinds.add_parser(
        "megadetector", help="MegaDetector batch output (AddaxAI, Timelapse, export megadetector)"
    )
    md.add_argument("results", metavar="RESULTS.json", help="the batch-output file")
    md.add_argument(
        "--model-version",
        default=None,
        metavar="NAME",
        help="model version to store the boxes under (default import:<info.detector>)",
    )
    md.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help=f"drop boxes below this confidence (default {DEFAULT_THRESHOLD})",
    )
    md.add_argument(
        "--class-map",
        action="append",
        default=[],
        metavar="CATEGORY=CLASS",
        help="store a category's boxes as CLASS ('person=' drops them; repeatable; default "
        "person= vehicle=, animal stays animal)",
    )
    md.set_defaults(func=_megadetector)


def parse_class_map(items: list[str]) -> dict[str, str]:
    """Turn ``["animal=doe", "person="]`` into a class map on top of the default one."""
    from deer_pipeline.exports.megadetector_import import DEFAULT_CLASS_MAP

    out = dict(DEFAULT_CLASS_MAP)
    for item in items:
        name, sep, cls = item.partition("=")
        if not sep or not name:
            raise DeerError(f"--class-map {item!r}: expected CATEGORY=CLASS")
        out[name.strip()] = cls.strip()
    return out


def _megadetector(args: argparse.Namespace) -> int:
    from deer_pipeline.config import image_root
    from deer_pipeline.db.connect import data_connection
    from deer_pipeline.exports.megadetector_import import (
        default_model_version,
        read_results,
        store_results,
    )

    parsed = read_results(
        args.results, class_map=parse_class_map(args.class_map), threshold=args.threshold
    )
    version = args.model_version or default_model_version(parsed)
    conn = data_connection()
    try:
        counts = store_results(conn, parsed, version, image_root())
    finally:
        conn.close()
    print(
        f"imported {args.results} as model version {version!r}: {counts['detections']} "
        f"detections on {counts['matched']} images ({counts['unmatched']} files not found, "
        f"{counts['duplicates']} duplicates, {counts['failed']} failed in the file, "
        f"{counts['below_threshold']} boxes below {args.threshold}, "
        f"{counts['dropped_by_class']} dropped by class)"
    )
    return 0
