"""What the review queue knows about each deer: its sightings' vectors, conditions, times, votes.

The queue ranks pairs with the pair model (``deer_pipeline.reid.pair_model``), whose evidence is
a :class:`~deer_pipeline.reid.pair_model.Side` per group of detections. Review needs the same
evidence per *sighting* too (the nearest single sightings of other deer, a stray box inside a
deer), so it keeps, per deer, the detection ids with their unit vectors (float16 in memory: half
the bytes, and the pair features are computed in float64 anyway), monochrome flags, capture times,
locations, photos and box votes, loaded for many deer in two queries (one binary COPY of the
vectors). Only the deer a decision touched are loaded again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from deer_pipeline.reid.pair_model import Side, make_side
from deer_pipeline.reid.sex import box_votes, vote_of
from deer_pipeline.reid.vectors import normalise_rows, read_id_halfvecs

# One row per sighting of the deer asked for: what the pair features read besides the vector.
_SIGHTINGS = """
SELECT s.deer_id, s.detection_id, x.image_id, extract(epoch FROM i.captured_at), i.location_key,
       x.class_name, x.confidence, x.class_scores, c.class_name, {monochrome}, s.tracklet_key
  FROM sightings s JOIN detections x ON x.id = s.detection_id JOIN images i ON i.id = x.image_id
  LEFT JOIN detection_corrections c ON c.detection_id = s.detection_id
 WHERE s.deer_id = ANY(%(ids)s)
 ORDER BY s.deer_id, s.detection_id
"""

# Each sighting's embedding of its deer's model (binary COPY: ids and halfvecs only).
_VECTORS = """
SELECT s.detection_id, e.embedding FROM sightings s JOIN deer d ON d.id = s.deer_id
  JOIN embeddings e ON e.detection_id = s.detection_id AND e.model_version = d.model_version
 WHERE s.deer_id = ANY(%(ids)s)
"""

_HAS_MONOCHROME = """
SELECT EXISTS (SELECT 1 FROM information_schema.columns
                WHERE table_name = 'detections' AND column_name = 'monochrome')
"""


@dataclass
class DeerEvidence:
    """One deer's sightings as the pair model reads them (rows aligned, by detection id).

    Attributes:
        id: the deer.
        detections: (n,) detection ids.
        vectors: (n, d) unit embeddings, float16.
        monochrome: per detection True (infrared/grey frame), False (colour) or None.
        times: (n,) capture times in epoch seconds (NaN unknown).
        locations: (n,) location keys.
        images: (n,) photo ids.
        votes: per detection its class vote (``reid.sex.box_votes``).
        tracklets: per detection the tracklet it was identified with (a burst's boxes of one
            animal; None for a sighting placed by a person).
    """

    id: int
    detections: np.ndarray
    vectors: np.ndarray
    monochrome: list
    times: np.ndarray
    locations: list[str]
    images: np.ndarray
    votes: list[dict]
    tracklets: list

    def __len__(self) -> int:
        return len(self.detections)

    def mean(self) -> np.ndarray:
        """The unit mean direction of its sightings (float32)."""
        return normalise_rows(self.vectors.astype(np.float32).sum(axis=0)[None])[0]

    def side(self, rows: Sequence[int] | np.ndarray | None = None) -> Side:
        """The pair model's side of all its sightings, or of ``rows`` of them."""
        idx = np.arange(len(self)) if rows is None else np.asarray(rows, dtype=np.int64)
        return make_side(
            self.vectors[idx].astype(np.float32),
            [self.monochrome[i] for i in idx],
            [None if np.isnan(self.times[i]) else float(self.times[i]) for i in idx],
            {self.locations[i] for i in idx},
            vote_of(self.votes[i] for i in idx),
        )


def has_monochrome(cur) -> bool:
    """Whether this database records each detection's colour/infrared condition."""
    cur.execute(_HAS_MONOCHROME)
    return bool(cur.fetchone()[0])


def load_evidence(cur, deer_ids: Iterable[int], monochrome: bool = False) -> dict:
    """Load the evidence of some deer (those without sightings or vectors are left out).

    Args:
        cur: a cursor.
        deer_ids: the deer.
        monochrome: read ``detections.monochrome`` (see :func:`has_monochrome`).

    Returns:
        deer id -> :class:`DeerEvidence`.
    """
    ids = sorted({int(i) for i in deer_ids})
    if not ids:
        return {}
    det_ids, vectors = read_id_halfvecs(cur, _VECTORS, {"ids": ids})
    row_of = {int(d): k for k, d in enumerate(det_ids.tolist())}
    cur.execute(
        _SIGHTINGS.format(monochrome="x.monochrome" if monochrome else "NULL::boolean"),
        {"ids": ids},
    )
    rows: dict[int, list] = defaultdict(list)
    for r in cur.fetchall():
        if r[1] in row_of:
            rows[r[0]].append(r)
    out = {}
    for deer_id, items in rows.items():
        take = np.array([row_of[r[1]] for r in items], dtype=np.int64)
        out[deer_id] = DeerEvidence(
            id=deer_id,
            detections=np.array([r[1] for r in items], dtype=np.int64),
            vectors=normalise_rows(vectors[take]).astype(np.float16),
            monochrome=[r[9] for r in items],
            times=np.array([np.nan if r[3] is None else float(r[3]) for r in items]),
            locations=[r[4] for r in items],
            images=np.array([r[2] for r in items], dtype=np.int64),
            votes=[box_votes(r[8] or r[5], r[6], r[7], r[8]) for r in items],
            tracklets=[r[10] for r in items],
        )
    return out
