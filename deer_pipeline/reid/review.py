"""Human review of identities: merge two deer, split sightings off, correct a detection's class.

People know things the model does not, and their decisions must outlive every later run. So a
merge or split writes ``manual`` sightings (a run never removes or re-identifies those), and a
class correction goes to ``detection_corrections``, which every run reads: the corrected class
drives the sex constraint, and ``not-deer`` takes the detection out of identities. Each action
takes the identity lock, runs in one transaction, settles the touched deer (gallery vector,
counts, first/last seen, deletion when empty) and is written to ``review_log``.
"""

from __future__ import annotations

import json
from collections import Counter

from deer_pipeline.errors import DeerError
from deer_pipeline.reid.identify import SIGHTING_COLUMNS, choose_model_version
from deer_pipeline.reid.matching import Gallery, MatchConfig
from deer_pipeline.reid.store import lock_identities, settle
from deer_pipeline.reid.tracklets import Detection, Tracklet
from deer_pipeline.reid.vectors import read_id_halfvecs
from deer_pipeline.vocabulary import CORRECTION_CLASSES, compatible_sexes, deer_sex


class ReviewError(DeerError):
    """A review action cannot be done as asked; the message says why."""


def _log(cur, action: str, details: dict) -> None:
    cur.execute(
        "INSERT INTO review_log (action, details) VALUES (%s, %s::jsonb)",
        (action, json.dumps(details)),
    )


def _deer(cur, deer_id: int) -> tuple[str, str | None]:
    cur.execute("SELECT sex, model_version FROM deer WHERE id = %s", (deer_id,))
    row = cur.fetchone()
    if row is None:
        raise ReviewError(f"deer {deer_id} does not exist (see `deer-pipeline deer list`)")
    return row


def _in_transaction(conn, action):
    try:
        with conn.cursor() as cur:
            lock_identities(cur)
            result = action(cur)
        conn.commit()
        return result
    except BaseException:
        conn.rollback()
        raise


def merge_deer(conn, keep: int, other: int, force: bool = False) -> dict:
    """Merge deer ``other`` into ``keep``: every sighting of both becomes ``manual`` on ``keep``.

    Both deer's sightings are pinned, so no later run can pull the merged animal apart again.

    Args:
        conn: a psycopg2 connection (committed here).
        keep: the deer that stays.
        other: the deer that is removed.
        force: allow merging conflicting sexes or deer seen in the same photo.

    Returns:
        ``{"deer": keep, "removed": other, "moved": n, "n_sightings": total}``.

    Raises:
        ReviewError: a deer is missing, or the merge conflicts and ``force`` is not set.
    """
    if keep == other:
        raise ReviewError("cannot merge a deer with itself")

    def action(cur):
        keep_sex, keep_mv = _deer(cur, keep)
        other_sex, other_mv = _deer(cur, other)
        if not force and "unknown" not in (keep_sex, other_sex) and keep_sex != other_sex:
            raise ReviewError(
                f"deer {keep} is {keep_sex} and deer {other} is {other_sex}; "
                "correct the detections' class or pass --force"
            )
        cur.execute(
            "SELECT count(DISTINCT d.image_id) FROM sightings a JOIN detections d"
            " ON d.id = a.detection_id WHERE a.deer_id = %s AND d.image_id IN (SELECT e.image_id"
            " FROM sightings b JOIN detections e ON e.id = b.detection_id WHERE b.deer_id = %s)",
            (keep, other),
        )
        shared = cur.fetchone()[0]
        if shared and not force:
            raise ReviewError(
                f"deer {keep} and {other} appear together in {shared} photo(s), so "
                "they are two animals; pass --force to merge anyway"
            )
        sex = other_sex if keep_sex == "unknown" else keep_sex
        cur.execute(
            "UPDATE deer SET sex = %s, model_version = COALESCE(model_version, %s) WHERE id = %s",
            (sex, other_mv, keep),
        )
        cur.execute(
            "UPDATE sightings SET method = 'manual', similarity = NULL, deer_id = %s"
            " WHERE deer_id IN (%s, %s)",
            (keep, keep, other),
        )
        cur.execute("SELECT count(*) FROM sightings WHERE deer_id = %s", (keep,))
        total = cur.fetchone()[0]
        cur.execute("DELETE FROM deer WHERE id = %s", (other,))
        settle(cur, {keep}, keep_mv or other_mv)
        result = {"deer": keep, "removed": other, "n_sightings": total}
        _log(cur, "merge", result)
        return result

    return _in_transaction(conn, action)


def split_sightings(conn, detection_ids: list[int]) -> dict:
    """Move sightings (by detection id) of one deer to a new deer, as ``manual`` sightings.

    The sightings that stay with the old deer become ``manual`` too, so that no later run can
    join the two groups again.

    Returns:
        ``{"deer": new id, "from": old id, "moved": n}``.

    Raises:
        ReviewError: a detection has no sighting, or they belong to different deer.
    """
    ids = sorted(set(detection_ids))
    if not ids:
        raise ReviewError("name at least one sighting (detection id) to split off")

    def action(cur):
        cur.execute(
            "SELECT s.detection_id, s.deer_id, COALESCE(c.class_name, d.class_name)"
            " FROM sightings s JOIN detections d ON d.id = s.detection_id"
            " LEFT JOIN detection_corrections c ON c.detection_id = s.detection_id"
            " WHERE s.detection_id = ANY(%s)",
            (ids,),
        )
        rows = cur.fetchall()
        missing = sorted(set(ids) - {r[0] for r in rows})
        if missing:
            raise ReviewError(f"detection(s) {missing} have no sighting")
        owners = {r[1] for r in rows}
        if len(owners) > 1:
            raise ReviewError(
                f"the sightings belong to several deer {sorted(owners)}; split one deer at a time"
            )
        old = owners.pop()
        old_sex, old_mv = _deer(cur, old)
        votes = Counter(deer_sex(r[2]) for r in rows if deer_sex(r[2]) != "unknown")
        sex = votes.most_common(1)[0][0] if votes else old_sex
        cur.execute(
            "INSERT INTO deer (sex, model_version) VALUES (%s, %s) RETURNING id", (sex, old_mv)
        )
        new = cur.fetchone()[0]
        cur.execute(
            "UPDATE sightings SET deer_id = %s, method = 'manual', similarity = NULL"
            " WHERE detection_id = ANY(%s)",
            (new, ids),
        )
        # The sightings left behind are confirmed as well: otherwise a re-run could match them
        # to the new deer and undo the split.
        cur.execute(
            "UPDATE sightings SET method = 'manual', similarity = NULL WHERE deer_id = %s", (old,)
        )
        settle(cur, {old, new}, old_mv)
        result = {"deer": new, "from": old, "moved": len(ids)}
        _log(cur, "split", {**result, "detections": ids})
        return result

    return _in_transaction(conn, action)


def correct_detection(
    conn, detection_id: int, class_name: str, match: MatchConfig | None = None
) -> dict:
    """Record a human class for a detection and move its sighting if the class demands it.

    ``not-deer`` removes the detection's sighting. A deer class that conflicts with the sex of
    the detection's deer (or a detection without a sighting) re-identifies the detection alone
    against the gallery right away; the next run of its location re-derives it with the class.

    Returns:
        ``{"detection": id, "class": c, "from_deer": old or None, "to_deer": new or None}``.

    Raises:
        ReviewError: unknown class or detection.
    """
    if class_name not in CORRECTION_CLASSES:
        raise ReviewError(f"class must be one of {', '.join(CORRECTION_CLASSES)}")

    def action(cur):
        cur.execute(
            "SELECT d.id, i.location_key, s.deer_id, dr.sex, dr.model_version"
            " FROM detections d JOIN images i ON i.id = d.image_id"
            " LEFT JOIN sightings s ON s.detection_id = d.id"
            " LEFT JOIN deer dr ON dr.id = s.deer_id WHERE d.id = %s",
            (detection_id,),
        )
        row = cur.fetchone()
        if row is None:
            raise ReviewError(f"detection {detection_id} does not exist")
        _, location, old, old_sex, old_mv = row
        cur.execute(
            "INSERT INTO detection_corrections (detection_id, class_name) VALUES (%s, %s)"
            " ON CONFLICT (detection_id) DO UPDATE SET class_name = EXCLUDED.class_name,"
            " corrected_at = now()",
            (detection_id, class_name),
        )
        new = old
        if old is not None and (
            class_name == "not-deer" or old_sex not in compatible_sexes(class_name)
        ):
            cur.execute("DELETE FROM sightings WHERE detection_id = %s", (detection_id,))
            settle(cur, {old})
            new = None
        if new is None and class_name != "not-deer":
            version = old_mv or choose_model_version(cur, location)
            new = _identify_one(cur, detection_id, class_name, version, match) if version else None
        result = {"detection": detection_id, "class": class_name, "from_deer": old, "to_deer": new}
        _log(cur, "correct", result)
        return result

    return _in_transaction(conn, action)


def _identify_one(
    cur, detection_id: int, class_name: str, version: str, match: MatchConfig | None
) -> int | None:
    """Match one detection alone against the gallery and store its sighting."""
    ids, vectors = read_id_halfvecs(
        cur,
        "SELECT detection_id, embedding FROM embeddings"
        " WHERE detection_id = %s AND model_version = %s",
        (detection_id, version),
    )
    if not len(ids):
        return None
    cur.execute(
        "SELECT d.image_id, COALESCE(i.burst_id, i.id), i.captured_at, d.confidence,"
        " d.x1, d.y1, d.x2, d.y2 FROM detections d JOIN images i ON i.id = d.image_id"
        " WHERE d.id = %s",
        (detection_id,),
    )
    image_id, burst, when, conf, *box = cur.fetchone()
    det = Detection(
        detection_id, image_id, burst, 0, when, class_name, tuple(box), vectors[0], conf
    )
    cur.execute(
        "SELECT s.deer_id FROM sightings s JOIN detections d ON d.id = s.detection_id"
        " WHERE d.image_id = %s",
        (image_id,),
    )
    gallery = Gallery(cur, version, match, {image_id: {r[0] for r in cur.fetchall()}})
    result = gallery.assign(Tracklet([det], vectors[0]))
    cur.execute(
        f"INSERT INTO sightings ({', '.join(n for n, _ in SIGHTING_COLUMNS)})"
        " VALUES (%s, %s, %s, %s, %s)",
        (
            detection_id,
            result.deer_id,
            result.similarity,
            result.method,
            Tracklet([det], vectors[0]).key,
        ),
    )
    settle(cur, {result.deer_id}, version)
    return result.deer_id


def list_deer(cur) -> list[dict]:
    """Return every deer with sex, counts, first/last seen and locations, by id."""
    cur.execute(
        "SELECT d.id, d.sex, d.n_sightings, d.first_seen, d.last_seen,"
        " COALESCE(array_agg(DISTINCT i.location_key) FILTER (WHERE i.location_key IS NOT NULL),"
        " '{}'), count(*) FILTER (WHERE s.method = 'manual')"
        " FROM deer d LEFT JOIN sightings s ON s.deer_id = d.id"
        " LEFT JOIN detections x ON x.id = s.detection_id LEFT JOIN images i ON i.id = x.image_id"
        " GROUP BY d.id ORDER BY d.id"
    )
    keys = ("id", "sex", "n_sightings", "first_seen", "last_seen", "locations", "manual")
    return [dict(zip(keys, row, strict=True)) for row in cur.fetchall()]
