"""``deer-pipeline report herd OUT_DIR``: the herd survey report (exports/herd_survey.py)."""

from __future__ import annotations

import argparse
from datetime import date


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from exc


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``report`` command group."""
    parser = subparsers.add_parser("report", help="reports for people (the herd survey)")
    reports = parser.add_subparsers(dest="report_command", required=True, metavar="REPORT")
    herd = reports.add_parser(
        "herd", help="herd survey: unique bucks, does and fawns, ratios, activity (HTML + JSON)"
    )
    herd.add_argument("out", metavar="OUT_DIR", help="folder for index.html and summary.json")
    herd.add_argument(
        "--from", dest="start", type=_day, metavar="DATE", help="first camera-local date"
    )
    herd.add_argument("--to", dest="end", type=_day, metavar="DATE", help="last date, inclusive")
    herd.add_argument(
        "--location",
        action="append",
        metavar="KEY",
        help="a location key (or folder name); repeat for several (default: all)",
    )
    herd.set_defaults(func=_herd)


def _herd(args: argparse.Namespace) -> int:
    from deer_pipeline.config import image_root
    from deer_pipeline.db.connect import data_connection
    from deer_pipeline.exports.herd_page import number
    from deer_pipeline.exports.herd_survey import write_herd_survey

    conn = data_connection()
    try:
        with conn, conn.cursor() as cur:
            result = write_herd_survey(
                cur, args.out, args.start, args.end, args.location, image_root()
            )
    finally:
        conn.close()
    u, j, r = result["unique"], result["jacobson"], result["ratios"]
    window = result["window"]
    print(f"wrote {result['path']} and summary.json")
    if not result["images"]:
        print("no photos in this window at these locations: the report says so")
    print(
        f"{window['start'] or '-'} to {window['end'] or '-'}: {result['images']} photos, "
        f"{result['camera_days']} camera-days; unique deer {u['total']} ({u['buck']} bucks, "
        f"{u['doe']} does, {u['fawn']} fawns, {u['unknown']} unknown), "
        f"{result['reviewed_deer']} reviewed"
    )
    print(
        f"does per buck {number(r['does_per_buck'], 2)}, fawns per doe "
        f"{number(r['fawns_per_doe'], 2)}; camera-survey estimate {number(j['total'])} "
        f"({number(j['bucks'])} bucks, {number(j['does'])} does, {number(j['fawns'])} fawns)"
    )
    return 0
