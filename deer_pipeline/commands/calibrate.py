"""``deer-pipeline calibrate``: fit the configured re-ID model's match threshold and store it.

The labels are a person's review decisions in this database (default) or a labelled set
(``--truth ground_truth.json``); the fit is ``reid/calibrate.py``'s, and the result is stored as
the model version's calibration in this database (``reid/calibration.py``), which identity runs
then use instead of the calibration file or the fallback.
"""

from __future__ import annotations

import argparse
import json

from deer_pipeline.errors import DeerError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``calibrate`` command."""
    parser = subparsers.add_parser(
        "calibrate",
        help="fit the re-ID model's match threshold from review decisions or a labelled set",
    )
    parser.add_argument(
        "--truth",
        default=None,
        metavar="GROUND_TRUTH.json",
        help="a labelled set (boxes with individual_id, paths relative to DEER_IMAGE_ROOT); "
        "default: the review decisions stored in the database",
    )
    parser.add_argument(
        "--model-version",
        default=None,
        help="the embedding model version to calibrate (default: DEER_REID_WEIGHTS's)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the fit without storing it")
    parser.set_defaults(func=calibrate_command)


def calibrate_command(args: argparse.Namespace) -> int:
    """Fit and store; the last line printed is the fit as one JSON object."""
    from dataclasses import asdict, replace
    from pathlib import Path

    from deer_pipeline import config
    from deer_pipeline.db.connect import connect, ensure_ready
    from deer_pipeline.model_versions import MISSING, weights_version
    from deer_pipeline.reid import calibration
    from deer_pipeline.reid.calibrate import (
        CalibrationDataError,
        fit_threshold,
        labels_from_decisions,
        labels_from_truth,
    )

    version = args.model_version or weights_version(config.reid_weights())
    if version == MISSING:
        raise DeerError(
            f"the re-ID weights {config.reid_weights()} are not on this machine: "
            "pass --model-version"
        )
    if args.truth and not Path(args.truth).is_file():
        raise DeerError(f"labelled set not found: {args.truth}")
    conn = connect(ensure_ready().data)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM embeddings WHERE model_version = %s", (version,))
            if cur.fetchone()[0] == 0:
                raise DeerError(f"no embeddings of model {version} in this database")
            try:
                labels = (
                    labels_from_truth(cur, version, args.truth)
                    if args.truth
                    else labels_from_decisions(cur, version)
                )
                fit = fit_threshold(cur, version, labels)
            except (CalibrationDataError, KeyError, ValueError) as exc:
                raise DeerError(str(exc)) from exc
            current = calibration.resolve(cur, version, _weights_file(version))
            fitted = {"how": labels.source, "criterion": "youden_j", **asdict(fit)}
            result = replace(
                current,
                model_version=version,
                match_threshold=fit.threshold,
                fitted=fitted,
                source=f"database:{labels.source}",
            )
            if not args.dry_run:
                calibration.store(cur, result, labels.source)
        conn.commit()
    finally:
        conn.close()
    print(
        f"model {version}: match threshold {fit.threshold:.3f} from {labels.source} "
        f"({fit.same_pairs} same, {fit.different_pairs} different pairs; "
        f"was {current.match_threshold:.3f} from {current.source})"
        + (" - not stored (--dry-run)" if args.dry_run else "")
    )
    print(json.dumps({"model_version": version, "stored": not args.dry_run, **fitted}))
    return 0


def _weights_file(version: str) -> str | None:
    """The configured weights file when it is this version's (its calibration file sits beside)."""
    from deer_pipeline import config
    from deer_pipeline.model_versions import weights_version
    from deer_pipeline.vision.backbones import EmbedderWeightsError, parse_spec, weights_file

    spec = config.reid_weights()
    if weights_version(spec) != version:
        return None
    try:
        return weights_file(parse_spec(spec))
    except EmbedderWeightsError:
        return None
