"""``deer-pipeline review`` (the web app) and ``deer-pipeline review simulate`` (the ranking test).

The app binds 127.0.0.1 unless ``--host`` says otherwise and runs uvicorn in this process: Ctrl-C
stops it (uvicorn's own handler finishes open requests), the connection pool is closed, and the
embedded database is stopped if this command started it. Decisions carry the reviewer's name:
``--reviewer``, default the operating-system user.
"""

from __future__ import annotations

import argparse
import json

from deer_pipeline.commands.deer import os_user


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``review`` command (and ``review simulate``)."""
    parser = subparsers.add_parser("review", help="review identities in the browser")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    parser.add_argument("--reviewer", default=os_user(), help="name recorded with each decision")
    parser.set_defaults(func=_serve)
    actions = parser.add_subparsers(dest="review_command", metavar="ACTION")
    sim = actions.add_parser(
        "simulate", help="answer the queue from a synthetic world's ground truth"
    )
    sim.add_argument("--truth", required=True, help="ground_truth.json of the synthetic world")
    sim.add_argument("--max-decisions", type=int, default=None, help="stop after N decisions")
    sim.add_argument("--reviewer", default="simulated", help="name recorded with each decision")
    sim.set_defaults(func=_simulate)


def proposal_queue():
    """The queue with the configured re-ID weights' calibration (``DEER_REID_WEIGHTS``)."""
    import os

    from deer_pipeline.config import reid_weights
    from deer_pipeline.model_versions import weights_version
    from deer_pipeline.review_app.queue import ProposalQueue

    def weights() -> dict:
        spec = reid_weights()
        return {weights_version(spec): spec} if os.path.isfile(spec) else {}

    return ProposalQueue(weights=weights)


def _simulate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from deer_pipeline.db.connect import connect, ensure_ready
    from deer_pipeline.errors import DeerError
    from deer_pipeline.reid.matching import MatchConfig
    from deer_pipeline.review_app.simulate import simulate

    if not Path(args.truth).is_file():
        raise DeerError(f"no ground truth at {args.truth}")
    if args.max_decisions is not None and args.max_decisions < 0:
        raise DeerError("--max-decisions must be 0 or more")
    conn = connect(ensure_ready().data)
    try:
        result = simulate(
            conn,
            args.truth,
            queue=proposal_queue(),
            max_decisions=args.max_decisions,
            reviewer=args.reviewer,
            match=MatchConfig(),
        )
    finally:
        conn.close()
    print(
        f"{result['decisions']} decisions ({result['merges']} merges, {result['not_same']} not "
        f"the same, {result['splits']} stray boxes split, {result['kept']} kept, "
        f"{result['class_corrections']} classes; stopped: {result['stopped']}): deer "
        f"{result['deer_before']} -> "
        f"{result['deer_after']} (true {result['deer_true']}), B-cubed precision "
        f"{result['bcubed_precision']}, recall {result['bcubed_recall']}"
    )
    print(json.dumps(result), flush=True)
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from deer_pipeline.config import database_url_override, deer_home, image_root
    from deer_pipeline.db.connect import ensure_ready
    from deer_pipeline.reid.matching import MatchConfig
    from deer_pipeline.reid.review import last_reviewed
    from deer_pipeline.review_app.app import LOCAL_HOSTS, ReviewApp, create_app
    from deer_pipeline.review_observation import ReviewObserver

    started_db = False
    if not database_url_override():
        from deer_pipeline.db.server import server_running

        started_db = not server_running()
    urls = ensure_ready()
    hosts = LOCAL_HOSTS
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        hosts = ("*",) if args.host in ("0.0.0.0", "::") else (*LOCAL_HOSTS, args.host)
    review = ReviewApp(
        urls.data,
        image_root(),
        deer_home() / "review-crops",
        args.reviewer,
        hosts=hosts,
        match=MatchConfig(),
        queue=proposal_queue(),
    )
    observer = ReviewObserver()
    observer.start()
    try:
        with review.connection() as conn, conn.cursor() as cur:
            at_start = last_reviewed(cur)
        review.start_ranking()  # the page says "ranking..." until the first ranking is built
        shown = f"[{args.host}]" if ":" in args.host else args.host
        print(f"Deer review: http://{shown}:{args.port}/", flush=True)
        config = uvicorn.Config(
            create_app(review), host=args.host, port=args.port, log_level="warning"
        )
        try:
            uvicorn.Server(config).run()
        except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled: a normal stop
            pass
        with review.connection() as conn, conn.cursor() as cur:
            at_end = last_reviewed(cur)
        if at_end is not None and at_end != at_start:
            observer.record(at_end)
            print(f"recorded the review in Dagster ({at_end['decisions']} decisions)", flush=True)
    finally:
        review.close()
        if started_db:
            from deer_pipeline.db.server import stop_server

            stop_server()
        print("stopped the review app", flush=True)
    return 0
