"""The evidence the pair model reads, from the database: sides of deer or detections, and decisions.

``reid/pair_model.py`` is pure numpy; this module owns the SQL that feeds it:

- :func:`detection_sides` / :func:`deer_sides`: a :class:`~deer_pipeline.reid.pair_model.Side`
  per group of detections or per deer, with the embeddings of one model version, each
  detection's monochrome flag (``detections.monochrome``, NULL = unknown), capture time,
  location and sex vote (corrections included, as ``reid/sex.py`` counts them);
- :func:`labelled_pairs`: what a person decided, as labelled pairs of detection groups: a merge
  (the two deer's sightings before it) is "the same animal"; a split (the moved sightings against
  those that stayed) and a "not the same deer" are "not". Undone decisions do not count. A pair
  belongs to the model version whose embeddings its detections have;
- :func:`refit_on_decisions`: the refit of a pair model on those pairs.

Only sightings are read; nothing is written here (``calibration.store`` stores a refit).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from deer_pipeline.reid.pair_model import PairModel, Side, feature_matrix, make_side
from deer_pipeline.reid.sex import SexVote, box_votes
from deer_pipeline.reid.tracklets import Detection
from deer_pipeline.reid.vectors import read_id_halfvecs

_DETECTIONS = """
SELECT d.id, d.monochrome, extract(epoch FROM i.captured_at), i.location_key, d.class_name,
       d.confidence, d.class_scores, c.class_name
  FROM detections d JOIN images i ON i.id = d.image_id
  LEFT JOIN detection_corrections c ON c.detection_id = d.id
 WHERE d.id = ANY(%s)
"""

_EMBEDDINGS = (
    "SELECT detection_id, embedding FROM embeddings WHERE detection_id = ANY(%s)"
    " AND model_version = %s ORDER BY detection_id"
)

_DEER_DETECTIONS = (
    "SELECT deer_id, array_agg(detection_id ORDER BY detection_id) FROM sightings"
    " WHERE deer_id = ANY(%s) GROUP BY deer_id"
)

_DECISIONS = """
SELECT r.id, r.action, r.details FROM review_log r
 WHERE r.action IN ('merge', 'split') AND r.details ? 'before'
   AND NOT EXISTS (SELECT 1 FROM review_log u
                    WHERE u.action = 'undo' AND u.details->>'undoes' = r.id::text)
 ORDER BY r.id
"""

_NOT_SAME = "SELECT id, left_detections, right_detections FROM deer_not_same ORDER BY id"


@dataclass(frozen=True)
class LabelledPair:
    """One human decision about two groups of detections.

    Attributes:
        left: detection ids of one side.
        right: detection ids of the other.
        same: True when the person said they are one animal.
        source: where it came from, e.g. ``merge:12`` (review_log id) or ``not_same:3``.
    """

    left: tuple[int, ...]
    right: tuple[int, ...]
    same: bool
    source: str


def side_of_detections(
    members: Sequence[Detection], locations: Iterable[str] = (), count: int | None = None
) -> Side:
    """Build a side from loaded detections (a tracklet, or several), with no SQL.

    Args:
        members: the detections, with embeddings, times and monochrome flags.
        locations: the location keys they were taken at.
        count: detections the side holds when ``members`` is a sample.
    """
    vote = SexVote()
    for m in members:
        vote.add(m.votes)
    return make_side(
        np.stack([m.embedding for m in members]),
        [m.monochrome for m in members],
        [m.captured_at.timestamp() if m.captured_at is not None else None for m in members],
        locations,
        vote,
        count,
    )


def detection_sides(cur, groups: Sequence[Sequence[int]], model_version: str) -> list[Side | None]:
    """Return a side per group of detection ids (None for a group without embeddings).

    Args:
        cur: a cursor on the data database.
        groups: detection ids of each side.
        model_version: the embedding model whose vectors are compared.

    Returns:
        One side (or None) per group, in order; detections without an embedding of this
        version are left out.
    """
    wanted = sorted({d for g in groups for d in g})
    if not wanted:
        return [None] * len(groups)
    ids, vectors = read_id_halfvecs(cur, _EMBEDDINGS, (wanted, model_version))
    vector_of = dict(zip(ids.tolist(), vectors, strict=True))
    cur.execute(_DETECTIONS, (sorted(vector_of),))
    info = {r[0]: r[1:] for r in cur.fetchall()}
    out: list[Side | None] = []
    for group in groups:
        members = sorted(d for d in set(group) if d in vector_of and d in info)
        if not members:
            out.append(None)
            continue
        vote = SexVote()
        for d in members:
            _, _, _, cls, conf, scores, corrected = info[d]
            vote.add(box_votes(corrected or cls, conf, scores, corrected))
        out.append(
            make_side(
                np.stack([vector_of[d] for d in members]),
                [info[d][0] for d in members],
                [info[d][1] for d in members],
                {info[d][2] for d in members},
                vote,
            )
        )
    return out


def deer_detections(cur, deer_ids: Sequence[int]) -> dict[int, list[int]]:
    """Return deer id -> its sightings' detection ids (sorted)."""
    if not deer_ids:
        return {}
    cur.execute(_DEER_DETECTIONS, (sorted(set(deer_ids)),))
    return {int(k): list(v) for k, v in cur.fetchall()}


def deer_sides(cur, deer_ids: Sequence[int], model_version: str) -> dict[int, Side]:
    """Return deer id -> its side (deer with no embedding of this version are left out)."""
    members = deer_detections(cur, deer_ids)
    keys = sorted(members)
    sides = detection_sides(cur, [members[k] for k in keys], model_version)
    return {k: s for k, s in zip(keys, sides, strict=True) if s is not None}


def labelled_pairs(cur) -> list[LabelledPair]:
    """Return every standing human decision about two groups of detections, oldest first."""
    out: list[LabelledPair] = []
    cur.execute(_DECISIONS)
    for log_id, action, details in cur.fetchall():
        rows = details["before"].get("sightings") or []
        if action == "merge":
            by_deer: dict[int, list[int]] = defaultdict(list)
            for det, deer, *_ in rows:
                by_deer[deer].append(det)
            left, right = by_deer.get(details.get("deer")), by_deer.get(details.get("removed"))
            if left and right:
                out.append(LabelledPair(tuple(left), tuple(right), True, f"merge:{log_id}"))
        else:
            moved = set(details.get("detections") or [])
            stayed = [det for det, *_ in rows if det not in moved]
            if moved and stayed:
                out.append(
                    LabelledPair(tuple(sorted(moved)), tuple(stayed), False, f"split:{log_id}")
                )
    cur.execute(_NOT_SAME)
    for row_id, left, right in cur.fetchall():
        out.append(LabelledPair(tuple(left), tuple(right), False, f"not_same:{row_id}"))
    return out


def labelled_examples(
    cur, model_version: str, pairs: Sequence[LabelledPair] | None = None
) -> tuple[np.ndarray, np.ndarray, list[LabelledPair]]:
    """Return the features and labels of the decisions whose sides have embeddings of a version.

    Args:
        cur: a cursor on the data database.
        model_version: the embedding model the examples belong to.
        pairs: the decisions (default: :func:`labelled_pairs`).

    Returns:
        (features (n, len(FEATURES)), labels (n,), the decisions used).
    """
    pairs = labelled_pairs(cur) if pairs is None else list(pairs)
    groups = [g for p in pairs for g in (p.left, p.right)]
    sides = detection_sides(cur, groups, model_version)
    used, both = [], []
    for k, pair in enumerate(pairs):
        a, b = sides[2 * k], sides[2 * k + 1]
        if a is not None and b is not None:
            used.append(pair)
            both.append((a, b))
    labels = np.array([1.0 if p.same else 0.0 for p in used])
    return feature_matrix(both), labels, used


def refit_on_decisions(cur, model: PairModel, model_version: str) -> tuple[PairModel, int]:
    """Refit ``model`` on this database's decisions for ``model_version``.

    Returns:
        (the refitted model, or ``model`` itself when there are none; examples used).
    """
    x, y, used = labelled_examples(cur, model_version)
    return model.refit(x, y), len(used)
