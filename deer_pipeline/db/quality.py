"""Data-quality figures of one camera location, read from the database (the asset checks' SQL).

Each function takes a cursor and a location key and returns plain figures plus a few example
rows. ``RULES`` says, as data, which figures each asset is checked on, when they pass, how bad a
failure is and whether it blocks; ``deer_pipeline/assets/quality_checks.py`` makes one Dagster
asset check of each. Kept Dagster-free so the rules can be tested and reused (e.g. by reports).
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from deer_pipeline.vocabulary import DEER_CLASSES, individual_id

BOX_TOLERANCE_PX = 1.0  # rounding of float4 coordinates at the image edge
DUPLICATE_IOU = 0.7
NORM_TOLERANCE = 0.01  # halfvec keeps about 3 significant digits
CONFIDENT = 0.5
EXAMPLES = 10


def image_figures(cur, key: str) -> dict:
    """Files by status and ok images without a camera capture time (none, or the file's mtime)."""
    cur.execute(
        """
        SELECT count(*) FILTER (WHERE status IN ('ok', 'failed')),
               count(*) FILTER (WHERE status = 'failed'),
               count(*) FILTER (WHERE status = 'ok'),
               count(*) FILTER (WHERE status = 'ok' AND captured_at IS NULL),
               count(*) FILTER (WHERE status = 'ok' AND captured_at_source = 'file_mtime')
          FROM images WHERE location_key = %s
        """,
        (key,),
    )
    files, failed, ok, no_time, mtime_only = cur.fetchone()
    return {
        "files": files,
        "failed": failed,
        "failed_share": round(failed / files, 4) if files else 0.0,
        "ok_images": ok,
        "without_capture_time": no_time,
        "time_from_file_mtime": mtime_only,
        "without_capture_time_share": round((no_time + mtime_only) / ok, 4) if ok else 0.0,
    }


def boxes_outside(cur, key: str) -> dict:
    """Boxes of the location's ok images that reach outside their image (or on a sizeless one)."""
    cur.execute(
        """
        SELECT d.id, i.rel_path, d.x1, d.y1, d.x2, d.y2, i.width, i.height
          FROM detections d JOIN images i ON i.id = d.image_id
         WHERE i.location_key = %s AND i.status = 'ok'
           AND (i.width IS NULL OR i.height IS NULL OR d.x1 < -%s OR d.y1 < -%s
                OR d.x2 > i.width + %s OR d.y2 > i.height + %s)
         ORDER BY d.id
        """,
        (key, *[BOX_TOLERANCE_PX] * 4),
    )
    rows = cur.fetchall()
    cur.execute(
        "SELECT count(*) FROM detections d JOIN images i ON i.id = d.image_id"
        " WHERE i.location_key = %s AND i.status = 'ok'",
        (key,),
    )
    return {"boxes": cur.fetchone()[0], "outside": len(rows), "examples": rows[:EXAMPLES]}


def duplicate_boxes(cur, key: str, iou: float = DUPLICATE_IOU) -> dict:
    """Pairs of deer boxes of one detector version in one frame overlapping at IoU >= ``iou``."""
    cur.execute(
        """
        WITH b AS (
            SELECT d.id, d.image_id, d.model_version, d.x1, d.y1, d.x2, d.y2,
                   (d.x2 - d.x1) * (d.y2 - d.y1) AS area
              FROM effective_detections d JOIN images i ON i.id = d.image_id
             WHERE i.location_key = %s AND i.status = 'ok'),
        pairs AS (
            SELECT a.id AS a, b.id AS b, a.image_id,
                   greatest(0, least(a.x2, b.x2) - greatest(a.x1, b.x1))
                 * greatest(0, least(a.y2, b.y2) - greatest(a.y1, b.y1)) AS inter,
                   a.area + b.area AS areas
              FROM b a JOIN b b ON a.image_id = b.image_id
               AND a.model_version = b.model_version AND a.id < b.id)
        SELECT a, b, image_id, round((inter / nullif(areas - inter, 0))::numeric, 3)
          FROM pairs WHERE inter / nullif(areas - inter, 0) >= %s ORDER BY a, b
        """,
        (key, iou),
    )
    rows = cur.fetchall()
    return {
        "pairs": len(rows),
        "frames": len({r[2] for r in rows}),
        "examples": [(a, b, float(v)) for a, b, _, v in rows[:EXAMPLES]],
    }


def _embedded_pair(cur, key: str) -> tuple[str, str] | None:
    """(embedder, detector) versions with the most embeddings at the location."""
    cur.execute(
        """
        SELECT e.model_version, d.model_version FROM embeddings e
          JOIN detections d ON d.id = e.detection_id JOIN images i ON i.id = d.image_id
         WHERE i.location_key = %s GROUP BY 1, 2 ORDER BY count(*) DESC, 1, 2 LIMIT 1
        """,
        (key,),
    )
    row = cur.fetchone()
    return tuple(row) if row else None


def embedding_coverage(cur, key: str, versions: tuple[str, str] | None = None) -> dict:
    """Detections of the embedded detector version at the location lacking an embedding.

    Args:
        cur: a cursor.
        key: the location.
        versions: (embedder, detector) versions, e.g. from the last materialization's metadata;
            default the pair with the most embeddings at the location.
    """
    versions = versions or _embedded_pair(cur, key)
    if versions is None:
        return {"embedder": None, "detector": None, "detections": 0, "missing": 0, "examples": []}
    emb, det = versions
    cur.execute(
        """
        SELECT d.id, e.detection_id IS NOT NULL FROM detections d
          JOIN images i ON i.id = d.image_id
          LEFT JOIN embeddings e ON e.detection_id = d.id AND e.model_version = %s
         WHERE i.location_key = %s AND i.status = 'ok' AND d.model_version = %s ORDER BY d.id
        """,
        (emb, key, det),
    )
    rows = cur.fetchall()
    missing = [i for i, has in rows if not has]
    return {
        "embedder": emb,
        "detector": det,
        "detections": len(rows),
        "missing": len(missing),
        "examples": missing[:EXAMPLES],
    }


def embedding_norms(cur, key: str) -> dict:
    """Embeddings of the location's detections whose L2 norm is not 1 (within tolerance)."""
    cur.execute(
        """
        SELECT e.detection_id, e.model_version, l2_norm(e.embedding) FROM embeddings e
          JOIN detections d ON d.id = e.detection_id JOIN images i ON i.id = d.image_id
         WHERE i.location_key = %s
        """,
        (key,),
    )
    rows = cur.fetchall()
    bad = [(i, v, round(float(n), 4)) for i, v, n in rows if abs(n - 1.0) > NORM_TOLERANCE]
    norms = [float(n) for _, _, n in rows]
    return {
        "embeddings": len(rows),
        "not_unit": len(bad),
        "min_norm": round(min(norms), 4) if norms else None,
        "max_norm": round(max(norms), 4) if norms else None,
        "examples": bad[:EXAMPLES],
    }


def same_frame_merges(cur, key: str) -> dict:
    """Deer with two or more sightings in one frame of the location (one animal, two places)."""
    cur.execute(
        """
        SELECT s.deer_id, i.rel_path, array_agg(s.detection_id ORDER BY s.detection_id)
          FROM sightings s JOIN detections d ON d.id = s.detection_id
          JOIN images i ON i.id = d.image_id
         WHERE i.location_key = %s GROUP BY s.deer_id, i.rel_path HAVING count(*) > 1
         ORDER BY s.deer_id, i.rel_path
        """,
        (key,),
    )
    rows = cur.fetchall()
    return {"merges": len(rows), "deer": len({r[0] for r in rows}), "examples": rows[:EXAMPLES]}


def sex_conflicts(cur, key: str, confident: float = CONFIDENT) -> dict:
    """Deer seen at the location whose confident sightings (anywhere) disagree on the class.

    A sighting is confident when a person corrected its class or the detector's confidence is at
    least ``confident``; ``doe``, ``fawn`` and ``buck`` exclude each other (see ``vocabulary``).
    """
    cur.execute(
        """
        WITH here AS (
            SELECT DISTINCT s.deer_id FROM sightings s JOIN detections d ON d.id = s.detection_id
              JOIN images i ON i.id = d.image_id WHERE i.location_key = %s)
        SELECT s.deer_id, array_agg(DISTINCT d.class_name)
          FROM sightings s JOIN here h ON h.deer_id = s.deer_id
          JOIN effective_detections d ON d.id = s.detection_id
         WHERE d.class_name = ANY(%s) AND (d.corrected OR d.confidence >= %s)
         GROUP BY s.deer_id HAVING count(DISTINCT d.class_name) > 1
         ORDER BY s.deer_id
        """,
        (key, list(DEER_CLASSES), confident),
    )
    rows = cur.fetchall()
    cur.execute(
        "SELECT count(DISTINCT s.deer_id) FROM sightings s JOIN detections d"
        " ON d.id = s.detection_id JOIN images i ON i.id = d.image_id WHERE i.location_key = %s",
        (key,),
    )
    return {
        "deer": cur.fetchone()[0],
        "conflicts": len(rows),
        "examples": [(d, sorted(c)) for d, c in rows[:EXAMPLES]],
    }


def missing_individuals(cur, key: str, observations_csv: Path) -> dict:
    """Deer seen at the location that the Camtrap DP package has no ``individualID`` for."""
    cur.execute(
        "SELECT DISTINCT s.deer_id FROM sightings s JOIN detections d ON d.id = s.detection_id"
        " JOIN images i ON i.id = d.image_id WHERE i.location_key = %s",
        (key,),
    )
    deer = {individual_id(d) for (d,) in cur.fetchall()}
    with observations_csv.open(newline="", encoding="utf-8") as fh:
        present = {row["individualID"] for row in csv.DictReader(fh)}
    absent = sorted(deer - present)
    return {"deer": len(deer), "absent": len(absent), "examples": absent[:EXAMPLES]}


@dataclass(frozen=True)
class Rule:
    """One quality rule of an asset, as data: the Dagster layer makes an asset check of each.

    Attributes:
        name: the check's name (stable: people and tests refer to it).
        asset: the asset it checks.
        description: what holds when it passes, in one line.
        figures: ``(cursor, location key, *extra) -> figures``; ``extra`` comes from the
            Dagster layer when the rule needs run facts (``needs``).
        passed: whether the figures pass.
        summary: one line about the figures.
        error: ERROR severity (else WARN).
        blocking: a failure stops the assets downstream of ``asset`` in the run.
        needs: what extra arguments ``figures`` takes, named for the Dagster layer.
    """

    name: str
    asset: str
    description: str
    figures: Callable[..., dict]
    passed: Callable[[dict], bool]
    summary: Callable[[dict], str]
    error: bool = False
    blocking: bool = False
    needs: str | None = None


def unreviewed_counts(cur, key: str, start, end, locations) -> dict:
    """Share of each unique-deer count of the herd survey resting on deer nobody reviewed.

    Args:
        cur: a cursor.
        key: the location whose run asks (the survey covers its own window and locations).
        start: the survey window's first date (None: the first photo's).
        end: its last date (None: the last photo's).
        locations: the survey's locations (None: all).
    """
    from deer_pipeline.exports.herd_survey import read_survey, unreviewed_shares

    shares = unreviewed_shares(read_survey(cur, start, end, locations))
    over = sorted(k for k, share in shares.items() if share > UNREVIEWED_SHARE_WARN)
    figures = {f"unreviewed_share_{k}": round(v, 3) for k, v in shares.items()}
    return {**figures, "over": over}


FAILED_SHARE_WARN = 0.05
UNREVIEWED_SHARE_WARN = 0.5
NO_TIME_SHARE_WARN = 0.10

RULES: tuple[Rule, ...] = (
    # raw_images: failed files and images without a capture time only thin out or blur what
    # follows (fewer frames; bursts and first/last seen from file times): WARN.
    Rule(
        "failed_files_share",
        "raw_images",
        f"At most {FAILED_SHARE_WARN:.0%} of the location's files failed to read.",
        image_figures,
        lambda f: f["failed_share"] <= FAILED_SHARE_WARN,
        lambda f: f"{f['failed']} of {f['files']} files failed",
    ),
    Rule(
        "capture_time_share",
        "raw_images",
        f"At most {NO_TIME_SHARE_WARN:.0%} of ok images lack a camera capture time.",
        image_figures,
        lambda f: f["without_capture_time_share"] <= NO_TIME_SHARE_WARN,
        lambda f: (
            f"{f['without_capture_time'] + f['time_from_file_mtime']} of {f['ok_images']}"
            " images have no camera capture time"
        ),
    ),
    # detections: a box outside its image is corrupt geometry (crops, exports, Camtrap DP boxes
    # out of range): ERROR, not blocking (embeddings come out of the same step; their checks
    # block identities). Two deer boxes at IoU >= 0.7 are one animal boxed twice: WARN.
    Rule(
        "boxes_inside_image",
        "detections",
        "Every box lies inside its image (1 px tolerance).",
        boxes_outside,
        lambda f: f["outside"] == 0,
        lambda f: f"{f['outside']} of {f['boxes']} boxes reach outside their image",
        error=True,
    ),
    Rule(
        "no_duplicate_deer_boxes",
        "detections",
        f"No two deer boxes in one frame overlap at IoU >= {DUPLICATE_IOU}.",
        duplicate_boxes,
        lambda f: f["pairs"] == 0,
        lambda f: f"{f['pairs']} overlapping box pairs in {f['frames']} frames",
    ),
    # embeddings: a detection without one silently drops out of identities, and a vector off
    # the unit sphere skews gallery means and thresholds: ERROR and blocking.
    Rule(
        "one_embedding_per_detection",
        "embeddings",
        "Every detection the embeddings ran on has one embedding.",
        embedding_coverage,
        lambda f: f["missing"] == 0,
        lambda f: f"{f['missing']} of {f['detections']} detections lack an embedding",
        error=True,
        blocking=True,
        needs="embedded_versions",
    ),
    Rule(
        "unit_norm",
        "embeddings",
        f"Every embedding has unit L2 norm (within {NORM_TOLERANCE}).",
        embedding_norms,
        lambda f: f["not_unit"] == 0,
        lambda f: f"{f['not_unit']} of {f['embeddings']} embeddings are not unit length",
        error=True,
        blocking=True,
    ),
    # deer_identities: one deer twice in one frame is two animals merged; everything built on
    # it would be wrong: ERROR, blocking. Confident sex conflicts are likely merges, but a
    # misclassified box does the same and review fixes either: WARN.
    Rule(
        "no_same_frame_merge",
        "deer_identities",
        "No deer has two sightings in one frame.",
        same_frame_merges,
        lambda f: f["merges"] == 0,
        lambda f: f"{f['deer']} deer appear twice in one frame ({f['merges']} frames)",
        error=True,
        blocking=True,
    ),
    Rule(
        "no_confident_sex_conflict",
        "deer_identities",
        f"No deer mixes confident (>= {CONFIDENT} or corrected) doe/fawn/buck.",
        sex_conflicts,
        lambda f: f["conflicts"] == 0,
        lambda f: f"{f['conflicts']} of {f['deer']} deer mix confident classes",
    ),
    # camtrap_dp: a deer missing from the package is lost to whoever reads it: ERROR.
    Rule(
        "every_deer_is_an_individual",
        "camtrap_dp",
        "Every deer seen at the location appears as an individualID.",
        missing_individuals,
        lambda f: f["absent"] == 0,
        lambda f: f"{f['absent']} of {f['deer']} deer missing from observations.csv",
        error=True,
        needs="observations_csv",
    ),
    # herd_survey: figures resting mostly on deer nobody reviewed are the machine's guesses;
    # people should know before they trust them: WARN.
    Rule(
        "counts_mostly_reviewed",
        "herd_survey",
        "Most of each unique-deer count rests on deer a person has reviewed.",
        unreviewed_counts,
        lambda f: not f["over"],
        lambda f: (
            f"most of the {', '.join(f['over'])} count rests on unreviewed deer: review them "
            "(deer-pipeline review) before trusting the herd figures"
            if f["over"]
            else "every count rests mostly on reviewed deer"
        ),
        needs="survey_window",
    ),
)


def rules_of(asset: str) -> list[Rule]:
    """Return the quality rules of ``asset``."""
    return [rule for rule in RULES if rule.asset == asset]
