"""``deer-pipeline deer merge|split|list`` and ``deer-pipeline detection correct``: human review."""

from __future__ import annotations

import argparse
import getpass

from deer_pipeline.vocabulary import CORRECTION_CLASSES


def os_user() -> str:
    """The operating-system user's name: the default reviewer of a decision."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _reviewer_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reviewer", default=os_user(), help="name recorded with the decision (default: you)"
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``deer`` and ``detection`` command groups."""
    deer = subparsers.add_parser("deer", help="review individual deer (merge, split, list)")
    actions = deer.add_subparsers(dest="deer_command", required=True, metavar="ACTION")
    merge = actions.add_parser(
        "merge", help="merge deer B into deer A (all their sightings become manual)"
    )
    merge.add_argument("a", type=int, help="the deer that stays")
    merge.add_argument("b", type=int, help="the deer that is merged into A and removed")
    merge.add_argument(
        "--force",
        action="store_true",
        help="merge even if the sexes conflict or both are in one photo",
    )
    _reviewer_option(merge)
    merge.set_defaults(func=_merge)
    split = actions.add_parser("split", help="move sightings to a new deer (manual)")
    split.add_argument(
        "--sighting",
        dest="sightings",
        type=int,
        nargs="+",
        action="extend",
        required=True,
        metavar="DETECTION_ID",
        help="detection id(s) to move",
    )
    _reviewer_option(split)
    split.set_defaults(func=_split)
    listing = actions.add_parser("list", help="list every deer")
    listing.set_defaults(func=_list)
    detection = subparsers.add_parser("detection", help="correct a detection")
    det_actions = detection.add_subparsers(
        dest="detection_command", required=True, metavar="ACTION"
    )
    correct = det_actions.add_parser(
        "correct", help="set a detection's class (drives the sex constraint; not-deer removes it)"
    )
    correct.add_argument("id", type=int, help="detection id")
    correct.add_argument("--class", dest="class_name", required=True, choices=CORRECTION_CLASSES)
    _reviewer_option(correct)
    correct.set_defaults(func=_correct)


def _run(action, *args, **kwargs):
    from deer_pipeline.db.connect import data_connection

    conn = data_connection()
    try:
        return action(conn, *args, **kwargs)
    finally:
        conn.close()


def _merge(args: argparse.Namespace) -> int:
    from deer_pipeline.reid.review import merge_deer

    r = _run(merge_deer, args.a, args.b, force=args.force, reviewer=args.reviewer)
    print(
        f"merged deer {r['removed']} into deer {r['deer']}: {r['n_sightings']} sightings, "
        "all manual"
    )
    return 0


def _split(args: argparse.Namespace) -> int:
    from deer_pipeline.reid.review import split_sightings

    r = _run(split_sightings, args.sightings, reviewer=args.reviewer)
    print(f"moved {r['moved']} sighting(s) from deer {r['from']} to new deer {r['deer']}")
    return 0


def _correct(args: argparse.Namespace) -> int:
    from deer_pipeline.reid.matching import MatchConfig
    from deer_pipeline.reid.review import correct_detection

    r = _run(correct_detection, args.id, args.class_name, MatchConfig(), reviewer=args.reviewer)
    if r["from_deer"] == r["to_deer"]:
        where = f"stays with deer {r['to_deer']}" if r["to_deer"] else "has no deer"
    else:
        where = f"moved from deer {r['from_deer'] or '-'} to deer {r['to_deer'] or '-'}"
    print(f"detection {r['detection']} is now {r['class']}; its sighting {where}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from deer_pipeline.db.connect import data_connection
    from deer_pipeline.reid.review import list_deer

    conn = data_connection()
    try:
        with conn.cursor() as cur:
            rows = list_deer(cur)
    finally:
        conn.close()
    print(
        f"{'deer':>6}  {'sex':7} {'sightings':>9}  {'first seen':19}  {'last seen':19}  locations"
    )
    for r in rows:
        manual = f" ({r['manual']} manual)" if r["manual"] else ""
        print(
            f"{r['id']:>6}  {r['sex']:7} {r['n_sightings']:>9}  {str(r['first_seen'] or ''):19}"
            f"  {str(r['last_seen'] or ''):19}  {', '.join(sorted(r['locations']))}{manual}"
        )
    print(f"{len(rows)} deer")
    return 0
