"""Human review of identities: merge, split, not-the-same, correct a class, undo; who and when.

People know things the model does not, and their decisions must outlive every later run. So a
merge or split writes ``manual`` sightings (a run never removes or re-identifies those), and a
class correction goes to ``detection_corrections``, which every run reads: the corrected class
drives the sex constraint, and ``not-deer`` takes the detection out of identities. "Not the same
deer" goes to ``deer_not_same`` as two sets of detection ids (a cannot-link for the identity
clustering; review never proposes the pair again) and confirms both sides as ``manual``, so no
run with the gallery matcher can join them. "These sightings belong to their deer" (review asked
whether they are a stray) is a ``keep`` row of ``review_log``: nothing moves, review does not ask
again. Each action takes the identity lock (optionally for
a bounded wait), runs in one transaction, can check that the deer it decides on are still as the
person saw them (``expect``, a token from ``deer_state``), settles the touched deer (gallery
vector, counts, first/last seen, deletion when empty) and is written to ``review_log`` with the
reviewer and what the touched sightings were before, so that ``undo_last`` can restore them.
This module owns the SQL of ``review_log``, ``deer_not_same`` and ``detection_corrections``.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import psycopg2.errors

from deer_pipeline.errors import DeerError
from deer_pipeline.reid.identify import SIGHTING_COLUMNS, choose_model_version
from deer_pipeline.reid.matching import Gallery, MatchConfig
from deer_pipeline.reid.store import lock_identities, settle
from deer_pipeline.reid.tracklets import Detection, Tracklet
from deer_pipeline.reid.vectors import read_id_halfvecs
from deer_pipeline.vocabulary import (
    CORRECTION_CLASSES,
    DEER_CLASSES,
    compatible_sexes,
    deer_sex,
)

DECISIONS = ("merge", "split", "correct", "not_same", "keep")


class ReviewError(DeerError):
    """A review action cannot be done as asked; the message says why."""


class UnknownObject(ReviewError):
    """A deer or detection named in a decision does not exist."""


class DecisionConflict(ReviewError):
    """The deer changed since the person looked at them (another tab, another reviewer, a run)."""


class IdentityBusy(ReviewError):
    """An identity run holds the lock longer than the caller wanted to wait; nothing changed."""


def _log(cur, action: str, details: dict, reviewer: str | None) -> int:
    cur.execute(
        "INSERT INTO review_log (action, details, reviewer) VALUES (%s, %s::jsonb, %s)"
        " RETURNING id",
        (action, json.dumps(details, default=str), reviewer),
    )
    return cur.fetchone()[0]


def _deer(cur, deer_id: int) -> tuple[str, str | None]:
    cur.execute("SELECT sex, model_version FROM deer WHERE id = %s", (deer_id,))
    row = cur.fetchone()
    if row is None:
        raise UnknownObject(f"deer {deer_id} does not exist (see `deer-pipeline deer list`)")
    return row


def deer_state(cur, deer_ids) -> str:
    """Return a short token of the deer's current sex and sightings (changes with any decision).

    Args:
        cur: a cursor.
        deer_ids: the deer a person is looking at.

    Returns:
        16 hex digits; equal tokens mean the same sightings, sex and existence.
    """
    ids = sorted({int(i) for i in deer_ids})
    cur.execute(
        "SELECT d.id, d.sex, string_agg(s.detection_id::text, ',' ORDER BY s.detection_id)"
        " FROM deer d LEFT JOIN sightings s ON s.deer_id = d.id WHERE d.id = ANY(%s)"
        " GROUP BY d.id ORDER BY d.id",
        (ids,),
    )
    text = repr((ids, cur.fetchall()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _check_expected(cur, deer_ids, expect: str | None) -> None:
    if expect is not None and deer_state(cur, deer_ids) != expect:
        shown = " and ".join(str(i) for i in sorted(set(deer_ids)))
        raise DecisionConflict(
            f"deer {shown} changed since this page was shown (another tab, reviewer or run "
            "decided first); nothing was recorded: look again and decide on what is there now"
        )


def _snapshot(cur, detection_ids) -> dict:
    """What the sightings of some detections (and their deer) are now, for undo."""
    cur.execute(
        "SELECT detection_id, deer_id, method, similarity, tracklet_key FROM sightings"
        " WHERE detection_id = ANY(%s) ORDER BY detection_id",
        (sorted(detection_ids),),
    )
    rows = [list(r) for r in cur.fetchall()]
    cur.execute(
        "SELECT id, sex, model_version FROM deer WHERE id = ANY(%s) ORDER BY id",
        (sorted({r[1] for r in rows}),),
    )
    return {"detections": sorted(detection_ids), "sightings": rows, "deer": cur.fetchall()}


def _placement(cur, detection_ids) -> dict[str, int | None]:
    cur.execute(
        "SELECT detection_id, deer_id FROM sightings WHERE detection_id = ANY(%s)",
        (sorted(detection_ids),),
    )
    found = dict(cur.fetchall())
    return {str(d): found.get(d) for d in sorted(detection_ids)}


def _deer_detections(cur, deer_ids) -> list[int]:
    cur.execute(
        "SELECT detection_id FROM sightings WHERE deer_id = ANY(%s) ORDER BY detection_id",
        (sorted(deer_ids),),
    )
    return [r[0] for r in cur.fetchall()]


def _in_transaction(conn, action, lock_timeout_s: float | None = None):
    try:
        with conn.cursor() as cur:
            try:
                lock_identities(cur, lock_timeout_s)
            except psycopg2.errors.LockNotAvailable as exc:
                raise IdentityBusy(
                    f"an identity run has held the identity lock for over {lock_timeout_s:g} s; "
                    "nothing was recorded: decide again when it has finished"
                ) from exc
            result = action(cur)
        conn.commit()
        return result
    except BaseException:
        conn.rollback()
        raise


def merge_deer(
    conn,
    keep: int,
    other: int,
    force: bool = False,
    *,
    as_class: str | None = None,
    duplicates: bool = False,
    reviewer: str | None = None,
    expect: str | None = None,
    lock_timeout_s: float | None = None,
) -> dict:
    """Merge deer ``other`` into ``keep``: every sighting of both becomes ``manual`` on ``keep``.

    Both deer's sightings are pinned, so no later run can pull the merged animal apart again.

    Args:
        conn: a psycopg2 connection (committed here).
        keep: the deer that stays.
        other: the deer that is removed.
        force: allow merging conflicting sexes or deer seen in the same photo.
        as_class: the person says the animal is this deer class: every detection of both deer
            classified otherwise gets a correction to it (so the sexes agree), in the same
            transaction.
        duplicates: the person says boxes of both deer in one photo show the same animal twice
            (the detector's duplicates): in each such photo the most confident box stays and
            the others are corrected to ``not-deer``.
        reviewer: who decided (recorded in ``review_log``).
        expect: ``deer_state`` of (keep, other) as the person saw them; a different current
            state raises ``DecisionConflict``.
        lock_timeout_s: wait at most this long for the identity lock (``IdentityBusy``).

    Returns:
        ``{"deer": keep, "removed": other, "n_sightings": total, "log": review_log id}``.

    Raises:
        ReviewError: a deer is missing, or the merge conflicts and ``force`` is not set.
    """
    if keep == other:
        raise ReviewError("cannot merge a deer with itself")

    def action(cur):
        _check_expected(cur, (keep, other), expect)
        keep_sex, keep_mv = _deer(cur, keep)
        other_sex, other_mv = _deer(cur, other)
        before = _snapshot(cur, _deer_detections(cur, (keep, other)))
        corrections = []
        if as_class is not None:
            corrections = _correct_all(cur, (keep, other), as_class, reviewer)
            keep_sex = other_sex = as_class
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
        if shared and duplicates:
            corrections += _drop_duplicates(cur, keep, other, reviewer)
        elif shared and not force:
            raise ReviewError(
                f"deer {keep} and {other} appear together in {shared} photo(s), so "
                "they are two animals; pass --force to merge anyway"
            )
        before["corrections"] = corrections
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
        if as_class is not None:
            result |= {"class": as_class, "corrected": len(corrections)}
        after = _placement(cur, before["detections"])
        result["log"] = _log(cur, "merge", {**result, "before": before, "after": after}, reviewer)
        return result

    return _in_transaction(conn, action, lock_timeout_s)


def _drop_duplicates(cur, keep: int, other: int, reviewer: str | None) -> list[list]:
    """In photos with boxes of both deer, keep the most confident box; the rest are not-deer."""
    cur.execute(
        "WITH boxes AS (SELECT s.detection_id, d.image_id, d.confidence, s.deer_id"
        "  FROM sightings s JOIN detections d ON d.id = s.detection_id"
        "  WHERE s.deer_id IN (%(a)s, %(b)s)),"
        " shared AS (SELECT image_id FROM boxes GROUP BY image_id"
        "  HAVING count(DISTINCT deer_id) > 1),"
        " ranked AS (SELECT b.detection_id, row_number() OVER (PARTITION BY b.image_id"
        "  ORDER BY b.confidence DESC, b.detection_id) AS k"
        "  FROM boxes b JOIN shared USING (image_id))"
        " SELECT r.detection_id, c.class_name, c.reviewer FROM ranked r"
        " LEFT JOIN detection_corrections c ON c.detection_id = r.detection_id WHERE r.k > 1"
        " ORDER BY r.detection_id",
        {"a": keep, "b": other},
    )
    previous = [list(r) for r in cur.fetchall()]
    ids = [r[0] for r in previous]
    cur.execute(
        "INSERT INTO detection_corrections (detection_id, class_name, reviewer)"
        " SELECT unnest(%s::bigint[]), 'not-deer', %s ON CONFLICT (detection_id) DO UPDATE SET"
        " class_name = EXCLUDED.class_name, reviewer = EXCLUDED.reviewer, corrected_at = now()",
        (ids, reviewer),
    )
    cur.execute("DELETE FROM sightings WHERE detection_id = ANY(%s)", (ids,))
    return previous


def _correct_all(cur, deer_ids, class_name: str, reviewer: str | None) -> list[list]:
    """Correct every detection of the deer whose class is another deer class; return the old."""
    if class_name not in DEER_CLASSES:
        raise ReviewError(f"the animal's class must be one of {', '.join(DEER_CLASSES)}")
    cur.execute(
        "SELECT s.detection_id, c.class_name, c.reviewer FROM sightings s"
        " JOIN detections d ON d.id = s.detection_id"
        " LEFT JOIN detection_corrections c ON c.detection_id = s.detection_id"
        " WHERE s.deer_id = ANY(%s) AND COALESCE(c.class_name, d.class_name) <> %s"
        " ORDER BY s.detection_id",
        (sorted(deer_ids), class_name),
    )
    previous = [list(r) for r in cur.fetchall()]
    if previous:
        cur.execute(
            "INSERT INTO detection_corrections (detection_id, class_name, reviewer)"
            " SELECT unnest(%s::bigint[]), %s, %s ON CONFLICT (detection_id) DO UPDATE SET"
            " class_name = EXCLUDED.class_name, reviewer = EXCLUDED.reviewer,"
            " corrected_at = now()",
            ([r[0] for r in previous], class_name, reviewer),
        )
    cur.execute("UPDATE deer SET sex = %s WHERE id = ANY(%s)", (class_name, sorted(deer_ids)))
    return previous


def split_sightings(
    conn,
    detection_ids: list[int],
    into: int | None = None,
    *,
    source: int | None = None,
    reviewer: str | None = None,
    expect: str | None = None,
    lock_timeout_s: float | None = None,
) -> dict:
    """Move sightings (by detection id) of one deer to a new deer or to ``into``, as ``manual``.

    The sightings that stay with the old deer become ``manual`` too, so that no later run can
    join the two groups again.

    Args:
        conn: a psycopg2 connection (committed here).
        detection_ids: the sightings to move (all of one deer).
        into: an existing deer to move them to; None founds a new deer.
        source: the deer the person split (checked against ``expect`` first).
        reviewer: who decided.
        expect: ``deer_state`` of the deer they belong to (and ``into``) as the person saw them.
        lock_timeout_s: wait at most this long for the identity lock.

    Returns:
        ``{"deer": new or target id, "from": old id, "moved": n, "log": review_log id}``.

    Raises:
        ReviewError: a detection has no sighting, they belong to different deer, or ``into``
            is missing, the same deer, of another sex or seen in one photo with them.
    """
    ids = sorted(set(detection_ids))
    if not ids:
        raise ReviewError("name at least one sighting (detection id) to split off")

    def action(cur):
        if source is not None:
            _check_expected(cur, (source,) if into is None else (source, into), expect)
        cur.execute(
            "SELECT s.detection_id, s.deer_id, COALESCE(c.class_name, d.class_name), d.image_id"
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
        if source is not None and old != source:
            raise DecisionConflict(f"the sightings no longer belong to deer {source}")
        _check_expected(cur, (old,) if into is None else (old, into), expect)
        old_sex, old_mv = _deer(cur, old)
        votes = Counter(deer_sex(r[2]) for r in rows if deer_sex(r[2]) != "unknown")
        sex = votes.most_common(1)[0][0] if votes else old_sex
        before = _snapshot(cur, _deer_detections(cur, (old,)))
        if into is None:
            cur.execute(
                "INSERT INTO deer (sex, model_version) VALUES (%s, %s) RETURNING id", (sex, old_mv)
            )
            new = cur.fetchone()[0]
        else:
            new = _check_target(cur, into, old, sex, [r[3] for r in rows])
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
        after = _placement(cur, before["detections"])
        details = {**result, "detections": ids, "before": before, "after": after}
        result["log"] = _log(cur, "split", details, reviewer)
        return result

    return _in_transaction(conn, action, lock_timeout_s)


def _check_target(cur, into: int, old: int, sex: str, image_ids: list[int]) -> int:
    """Check that sightings of ``sex`` in ``image_ids`` may move to deer ``into``."""
    if into == old:
        raise ReviewError(f"the sightings already belong to deer {into}")
    into_sex, _ = _deer(cur, into)
    if into_sex not in compatible_sexes(sex):
        raise ReviewError(f"deer {into} is {into_sex}; these sightings are {sex}")
    cur.execute(
        "SELECT count(*) FROM sightings s JOIN detections d ON d.id = s.detection_id"
        " WHERE s.deer_id = %s AND d.image_id = ANY(%s)",
        (into, image_ids),
    )
    if cur.fetchone()[0]:
        raise ReviewError(f"deer {into} is in the same photo as one of these sightings")
    if into_sex == "unknown" and sex != "unknown":
        cur.execute("UPDATE deer SET sex = %s WHERE id = %s", (sex, into))
    return into


def not_same(
    conn,
    left: int,
    right: int,
    *,
    reviewer: str | None = None,
    expect: str | None = None,
    lock_timeout_s: float | None = None,
) -> dict:
    """Record that deer ``left`` and ``right`` are two animals (``deer_not_same``).

    The decision names the detections each deer has now (deer ids change across runs, detection
    ids do not). Both deer's sightings become ``manual``, so a later run cannot join them.

    Returns:
        ``{"not_same": row id, "left": left, "right": right, "log": review_log id}``.

    Raises:
        ReviewError: a deer is missing or both are the same deer.
    """
    if left == right:
        raise ReviewError("a deer is always the same as itself")

    def action(cur):
        _check_expected(cur, (left, right), expect)
        _deer(cur, left)
        _deer(cur, right)
        left_ids = _deer_detections(cur, (left,))
        right_ids = _deer_detections(cur, (right,))
        if not left_ids or not right_ids:
            raise ReviewError(f"deer {left if not left_ids else right} has no sightings")
        before = _snapshot(cur, left_ids + right_ids)
        cur.execute(
            "INSERT INTO deer_not_same (left_detections, right_detections, reviewer)"
            " VALUES (%s, %s, %s) RETURNING id",
            (left_ids, right_ids, reviewer or "unknown"),
        )
        row = cur.fetchone()[0]
        cur.execute(
            "UPDATE sightings SET method = 'manual', similarity = NULL WHERE deer_id IN (%s, %s)",
            (left, right),
        )
        result = {"not_same": row, "left": left, "right": right}
        after = _placement(cur, before["detections"])
        result["log"] = _log(
            cur, "not_same", {**result, "before": before, "after": after}, reviewer
        )
        return result

    return _in_transaction(conn, action, lock_timeout_s)


def keep_sightings(
    conn,
    detection_ids,
    *,
    reviewer: str | None = None,
    expect: str | None = None,
    lock_timeout_s: float | None = None,
) -> dict:
    """Record that some sightings belong to their deer (review asked whether they are a stray).

    Nothing moves; the decision is a ``review_log`` row (``keep``) naming the detections, their
    deer and the deer's other detections, so review never asks again and the pair model learns
    a "same animal" pair. Undo removes it like any decision.

    Returns:
        ``{"detections": ids, "deer": their deer, "log": review_log id}``.

    Raises:
        ReviewError: a detection has no sighting (``UnknownObject``), they belong to several
            deer, or their deer changed since the person looked (``expect``).
    """
    ids = sorted({int(d) for d in detection_ids})
    if not ids:
        raise ReviewError("name the sightings that belong to their deer")

    def action(cur):
        cur.execute(
            "SELECT detection_id, deer_id FROM sightings WHERE detection_id = ANY(%s)", (ids,)
        )
        owners = dict(cur.fetchall())
        missing = sorted(set(ids) - set(owners))
        if missing:
            raise UnknownObject(f"detection(s) {missing} have no sighting")
        if len(set(owners.values())) > 1:
            raise ReviewError("the sightings belong to several deer; keep one deer's at a time")
        deer_id = owners[ids[0]]
        _check_expected(cur, (deer_id,), expect)
        every = _deer_detections(cur, (deer_id,))
        result = {"detections": ids, "deer": deer_id}
        details = {
            **result,
            "with": [d for d in every if d not in owners],
            "before": _snapshot(cur, every),
            "after": _placement(cur, every),
        }
        result["log"] = _log(cur, "keep", details, reviewer)
        return result

    return _in_transaction(conn, action, lock_timeout_s)


_KEPT = """
SELECT r.id, r.details FROM review_log r
 WHERE r.action = 'keep'
   AND NOT EXISTS (SELECT 1 FROM review_log u
                    WHERE u.action = 'undo' AND u.details->>'undoes' = r.id::text)
 ORDER BY r.id
"""


def kept_sightings(cur) -> list[dict]:
    """Sightings a person said belong to their deer (not undone), oldest first.

    Returns:
        ``{"log": review_log id, "detections": ids, "deer": deer then, "with": the deer's other
        detections then}`` each.
    """
    cur.execute(_KEPT)
    return [
        {"log": log_id, "detections": d["detections"], "deer": d["deer"], "with": d["with"]}
        for log_id, d in cur.fetchall()
    ]


_RECENT = """
SELECT r.action FROM review_log r
 WHERE r.action IN ('merge', 'not_same')
   AND NOT EXISTS (SELECT 1 FROM review_log u
                    WHERE u.action = 'undo' AND u.details->>'undoes' = r.id::text)
 ORDER BY r.id DESC LIMIT %s
"""


def no_streak(cur, limit: int) -> int:
    """How many of the latest answers to pairs in a row were "not the same" (at most ``limit``).

    Only merges and "not the same" count (undone ones do not); answers about stray boxes and
    classes neither break nor extend a streak.
    """
    cur.execute(_RECENT, (limit,))
    streak = 0
    for (action,) in cur.fetchall():
        if action != "not_same":
            break
        streak += 1
    return streak


def correct_detection(
    conn,
    detection_id: int,
    class_name: str,
    match: MatchConfig | None = None,
    *,
    reviewer: str | None = None,
    expect: str | None = None,
    lock_timeout_s: float | None = None,
) -> dict:
    """Record a human class for a detection and move its sighting if the class demands it.

    ``not-deer`` removes the detection's sighting. A deer class that conflicts with the sex of
    the detection's deer (or a detection without a sighting) re-identifies the detection alone
    against the gallery right away; the next run of its location re-derives it with the class.

    Args:
        conn: a psycopg2 connection (committed here).
        detection_id: the detection.
        class_name: one of ``CORRECTION_CLASSES``.
        match: gallery matching settings for a re-identification.
        reviewer: who decided.
        expect: ``deer_state`` of the detection's deer as the person saw it.
        lock_timeout_s: wait at most this long for the identity lock.

    Returns:
        ``{"detection": id, "class": c, "from_deer": old or None, "to_deer": new or None}``.

    Raises:
        ReviewError: unknown class or detection.
    """
    if class_name not in CORRECTION_CLASSES:
        raise ReviewError(f"class must be one of {', '.join(CORRECTION_CLASSES)}")

    def action(cur):
        cur.execute(
            "SELECT d.id, i.location_key, s.deer_id, dr.sex, dr.model_version, c.class_name,"
            " c.reviewer FROM detections d JOIN images i ON i.id = d.image_id"
            " LEFT JOIN sightings s ON s.detection_id = d.id"
            " LEFT JOIN deer dr ON dr.id = s.deer_id"
            " LEFT JOIN detection_corrections c ON c.detection_id = d.id WHERE d.id = %s",
            (detection_id,),
        )
        row = cur.fetchone()
        if row is None:
            raise UnknownObject(f"detection {detection_id} does not exist")
        _, location, old, old_sex, old_mv, old_class, old_reviewer = row
        if old is not None:
            _check_expected(cur, (old,), expect)
        before = _snapshot(cur, [detection_id])
        before["correction"] = [old_class, old_reviewer] if old_class else None
        cur.execute(
            "INSERT INTO detection_corrections (detection_id, class_name, reviewer)"
            " VALUES (%s, %s, %s) ON CONFLICT (detection_id) DO UPDATE SET"
            " class_name = EXCLUDED.class_name, reviewer = EXCLUDED.reviewer, corrected_at = now()",
            (detection_id, class_name, reviewer),
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
        after = _placement(cur, [detection_id])
        result["log"] = _log(cur, "correct", {**result, "before": before, "after": after}, reviewer)
        return result

    return _in_transaction(conn, action, lock_timeout_s)


def not_a_deer(
    conn,
    deer_id: int,
    *,
    reviewer: str | None = None,
    expect: str | None = None,
    lock_timeout_s: float | None = None,
) -> dict:
    """Record that a whole "deer" is no deer (a stump or a rock the detector keeps finding).

    Every detection of it is corrected to ``not-deer`` (so no run identifies them again) and the
    deer disappears, in one decision.

    Returns:
        ``{"deer": id, "class": "not-deer", "detections": n, "log": review_log id}``.

    Raises:
        ReviewError: the deer does not exist (``UnknownObject``) or changed (``expect``).
    """

    def action(cur):
        _check_expected(cur, (deer_id,), expect)
        _deer(cur, deer_id)
        ids = _deer_detections(cur, (deer_id,))
        before = _snapshot(cur, ids)
        cur.execute(
            "SELECT d.id, c.class_name, c.reviewer FROM detections d"
            " LEFT JOIN detection_corrections c ON c.detection_id = d.id"
            " WHERE d.id = ANY(%s) ORDER BY d.id",
            (ids,),
        )
        before["corrections"] = [list(r) for r in cur.fetchall()]
        cur.execute(
            "INSERT INTO detection_corrections (detection_id, class_name, reviewer)"
            " SELECT unnest(%s::bigint[]), 'not-deer', %s ON CONFLICT (detection_id) DO UPDATE"
            " SET class_name = EXCLUDED.class_name, reviewer = EXCLUDED.reviewer,"
            " corrected_at = now()",
            (ids, reviewer),
        )
        cur.execute("DELETE FROM sightings WHERE detection_id = ANY(%s)", (ids,))
        settle(cur, {deer_id})
        result = {"deer": deer_id, "class": "not-deer", "detections": len(ids)}
        after = _placement(cur, ids)
        result["log"] = _log(cur, "correct", {**result, "before": before, "after": after}, reviewer)
        return result

    return _in_transaction(conn, action, lock_timeout_s)


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


_LAST_DECISION = """
SELECT r.id, r.action, r.details FROM review_log r
 WHERE r.action = ANY(%(actions)s) AND r.details ? 'before'
   AND (%(anyone)s OR r.reviewer IS NOT DISTINCT FROM %(reviewer)s)
   AND NOT EXISTS (SELECT 1 FROM review_log u
                    WHERE u.action = 'undo' AND u.details->>'undoes' = r.id::text)
 ORDER BY r.id DESC LIMIT 1
"""


def undo_last(
    conn,
    *,
    reviewer: str | None = None,
    anyone: bool = False,
    lock_timeout_s: float | None = None,
) -> dict:
    """Undo the reviewer's latest decision that is not undone yet: restore what it changed.

    The sightings the decision touched get back their deer, method and similarity (deer it
    removed come back with their old id), a "not the same" row is deleted, a class correction
    goes back to what it was. Refused when those sightings changed since (a later decision or
    run built on them).

    Args:
        conn: a psycopg2 connection (committed here).
        reviewer: whose decision to undo.
        anyone: undo the latest decision of any reviewer.
        lock_timeout_s: wait at most this long for the identity lock.

    Returns:
        ``{"undid": action, "decision": review_log id, "deer": [restored deer ids], "log": id}``.

    Raises:
        ReviewError: nothing to undo. DecisionConflict: the sightings changed since.
    """

    def action(cur):
        cur.execute(
            _LAST_DECISION, {"actions": list(DECISIONS), "anyone": anyone, "reviewer": reviewer}
        )
        row = cur.fetchone()
        if row is None:
            raise ReviewError("there is no decision left to undo")
        log_id, what, details = row
        before, after = details["before"], details["after"]
        now = _placement(cur, before["detections"])
        if now != after:
            raise DecisionConflict(
                f"cannot undo the {what} (decision {log_id}): its sightings changed since "
                "(a later decision or an identity run); nothing was changed"
            )
        touched = {v for v in after.values() if v is not None}
        cur.execute("DELETE FROM sightings WHERE detection_id = ANY(%s)", (before["detections"],))
        for deer_id, sex, model_version in before["deer"]:
            cur.execute(
                "INSERT INTO deer (id, sex, model_version) VALUES (%s, %s, %s)"
                " ON CONFLICT (id) DO UPDATE SET sex = EXCLUDED.sex",
                (deer_id, sex, model_version),
            )
            touched.add(deer_id)
        for detection_id, deer_id, method, similarity, tracklet_key in before["sightings"]:
            cur.execute(
                "INSERT INTO sightings (detection_id, deer_id, similarity, method, tracklet_key)"
                " VALUES (%s, %s, %s, %s, %s)",
                (detection_id, deer_id, similarity, method, tracklet_key),
            )
        if what == "not_same":
            cur.execute("DELETE FROM deer_not_same WHERE id = %s", (details["not_same"],))
        if what == "correct" and "detection" in details:
            _restore_correction(cur, details["detection"], before.get("correction"))
        for detection_id, class_name, by in reversed(before.get("corrections", [])):
            _restore_correction(cur, detection_id, [class_name, by] if class_name else None)
        settle(cur, touched)
        result = {"undid": what, "decision": log_id, "deer": sorted(d[0] for d in before["deer"])}
        result["log"] = _log(cur, "undo", {"undoes": log_id, "action": what}, reviewer)
        return result

    return _in_transaction(conn, action, lock_timeout_s)


def _restore_correction(cur, detection_id: int, previous: list | None) -> None:
    if previous is None:
        cur.execute("DELETE FROM detection_corrections WHERE detection_id = %s", (detection_id,))
    else:
        cur.execute(
            "UPDATE detection_corrections SET class_name = %s, reviewer = %s, corrected_at = now()"
            " WHERE detection_id = %s",
            (previous[0], previous[1], detection_id),
        )


def last_reviewed(cur) -> dict | None:
    """When identities were last reviewed: the latest ``review_log`` entry and the totals.

    For the Dagster UI (metadata of ``deer_identities``) and the review app's header.

    Returns:
        None before any decision, else ``{"at": ISO time, "reviewer": name, "action": a,
        "decisions": n of merge/split/correct/not_same, "undone": n}``.
    """
    cur.execute("SELECT at, reviewer, action FROM review_log ORDER BY id DESC LIMIT 1")
    row = cur.fetchone()
    if row is None:
        return None
    cur.execute(
        "SELECT count(*) FILTER (WHERE action <> 'undo'), count(*) FILTER (WHERE action = 'undo')"
        " FROM review_log"
    )
    decisions, undone = cur.fetchone()
    return {
        "at": row[0].isoformat(timespec="seconds"),
        "reviewer": row[1] or "unknown",
        "action": row[2],
        "decisions": decisions,
        "undone": undone,
    }
