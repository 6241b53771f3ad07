"""The evidence an identity run clusters: units, candidate pairs, priors and cannot-links.

A run identifies one location, but identities are global: the location's tracklets are clustered
together with the deer that already exist wherever they were seen. Only the deer a tracklet could
plausibly be are loaded (the nearest stored embeddings of identified detections, through the
``embeddings`` HNSW index, and the deer a person already placed in this location's photos), so a
new partition costs what it adds, not what the world holds. An existing deer enters as one unit:
the sum and count of its embeddings (``deer.embedding_sum``), its sex vote over all its boxes and
whether it holds a person's decisions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from deer_pipeline.db.indexes import halfvec_cast
from deer_pipeline.reid.cluster import Unit, cluster_units
from deer_pipeline.reid.matching import MatchConfig, query_literal
from deer_pipeline.reid.sex import SexVote, box_votes
from deer_pipeline.reid.tracklets import Tracklet
from deer_pipeline.reid.vectors import read_id_vectors

_ANY_IDENTIFIED = """
SELECT EXISTS (SELECT 1 FROM sightings s JOIN embeddings e ON e.detection_id = s.detection_id
                WHERE e.model_version = %s)
"""

# The nearest stored embeddings through the version's HNSW index (the same version filter and
# cast as its definition, db/indexes.py); the location's own (unidentified) detections are among
# them and are dropped by the join, identified ones name their deer.
_NEAREST = """
WITH c AS MATERIALIZED (
    SELECT detection_id, embedding::{cast} <=> %(q)s::int4[]::vector::{cast} AS distance
      FROM embeddings
     WHERE model_version = %(mv)s
     ORDER BY embedding::{cast} <=> %(q)s::int4[]::vector::{cast}
     LIMIT %(k)s)
SELECT s.deer_id, max(1 - c.distance) FROM c JOIN sightings s ON s.detection_id = c.detection_id
 GROUP BY s.deer_id ORDER BY 2 DESC, 1
"""

_DEER_SUMS = """
SELECT id, embedding_sum FROM deer
 WHERE id = ANY(%s) AND model_version = %s AND embedding_sum IS NOT NULL AND embedding_count > 0
 ORDER BY id
"""

_DEER_BOXES = """
SELECT s.deer_id, d.detected_class, d.confidence, d.class_scores,
       CASE WHEN d.corrected THEN d.class_name END, s.method = 'manual', d.image_id
  FROM sightings s JOIN effective_detections d ON d.id = s.detection_id
 WHERE s.deer_id = ANY(%(ids)s)
"""


def tracklet_unit(tracklet: Tracklet) -> Unit:
    """A new tracklet as a unit."""
    total = np.sum([m.embedding for m in tracklet.members], axis=0, dtype=np.float64)
    return Unit(total, len(tracklet.members), tracklet.vote, frozenset(tracklet.image_ids))


def nearest_deer(
    cur, queries: Sequence[np.ndarray], model_version: str, config: MatchConfig
) -> list[list[int]]:
    """Return, for each query vector, the deer of its nearest identified detections (HNSW).

    Returns empty lists without searching when no detection of this model has a deer yet.
    """
    cur.execute(_ANY_IDENTIFIED, (model_version,))
    if not cur.fetchone()[0]:
        return [[] for _ in queries]
    k = 4 * config.candidates
    cur.execute("SET LOCAL hnsw.ef_search = %s", (max(int(config.ef_search), k),))
    cur.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
    out = []
    for q in queries:
        query = _NEAREST.format(cast=halfvec_cast(len(q)))
        cur.execute(query, {"q": query_literal(q), "mv": model_version, "k": k})
        out.append([int(r[0]) for r in cur.fetchall()][: config.candidates])
    return out


def local_groups(units: Sequence[Unit], edges, priors, config: MatchConfig) -> list[list[int]]:
    """Cluster the location's own tracklets alone: one HNSW query per group, not per tracklet.

    The groups only choose which deer elsewhere are candidates; the clustering that decides
    starts again from the tracklets.
    """
    result = cluster_units(list(units), sorted(edges), config.threshold, config.sex_margin, priors)
    return result.clusters


def deer_units(cur, deer_ids: Sequence[int], model_version: str):
    """Load existing deer as units (with every photo they are in, wherever it was taken).

    Returns:
        (deer ids loaded, their units); deer without a gallery of this model are left out.
    """
    if not deer_ids:
        return [], []
    ids, sums = read_id_vectors(cur, _DEER_SUMS, (sorted(set(deer_ids)), model_version))
    ids = ids.tolist()
    cur.execute("SELECT id, embedding_count FROM deer WHERE id = ANY(%s)", (ids,))
    sizes = dict(cur.fetchall())
    cur.execute(_DEER_BOXES, {"ids": ids})
    votes: dict[int, SexVote] = defaultdict(SexVote)
    manual: set[int] = set()
    images: dict[int, set[int]] = defaultdict(set)
    for deer_id, cls, conf, scores, corrected, is_manual, image_id in cur.fetchall():
        votes[deer_id].add(box_votes(corrected or cls, conf, scores, corrected))
        if is_manual:
            manual.add(deer_id)
        images[deer_id].add(image_id)
    units = [
        Unit(
            sums[k].astype(np.float64),
            int(sizes[d]),
            votes[d],
            frozenset(images[d]),
            deer_id=d,
            manual=d in manual,
        )
        for k, d in enumerate(ids)
    ]
    return ids, units


def exact_neighbours(tracklets: Sequence[Tracklet], k: int, block: int = 1024):
    """Return candidate pairs (i < j): each tracklet with its ``k`` most similar others."""
    n = len(tracklets)
    if n < 2 or k <= 0:
        return set()
    mat = np.stack([t.embedding for t in tracklets]).astype(np.float32)
    k = min(k, n - 1)
    pairs: set[tuple[int, int]] = set()
    for start in range(0, n, block):
        sims = mat[start : start + block] @ mat.T
        rows = np.arange(sims.shape[0])
        sims[rows, rows + start] = -np.inf
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        for r, cols in enumerate(top.tolist()):
            i = start + r
            pairs.update((min(i, j), max(i, j)) for j in cols)
    return pairs


def visit_priors(tracklets: Sequence[Tracklet], config: MatchConfig):
    """Return (i, j) -> prior for tracklets of one camera close in time (``visit_prior``)."""
    timed = sorted((t.start.timestamp(), i) for i, t in enumerate(tracklets) if t.start is not None)
    window = config.visit_window_minutes * 60.0
    out: dict[tuple[int, int], float] = {}
    if config.visit_bonus == 0.0:
        return out
    for a, (ta, i) in enumerate(timed):
        for tb, j in timed[a + 1 :]:
            if tb - ta > window:
                break
            prior = config.visit_prior((tb - ta) / 60.0)
            if prior > 0.0:
                out[(min(i, j), max(i, j))] = prior
    return out


def not_same_pairs(cur, unit_of_detection: dict[int, int]) -> set[tuple[int, int]]:
    """Return unit pairs that a person said are not the same deer (``deer_not_same``)."""
    cur.execute("SELECT left_detections, right_detections FROM deer_not_same")
    pairs = set()
    for left, right in cur.fetchall():
        lu = {unit_of_detection[d] for d in left if d in unit_of_detection}
        ru = {unit_of_detection[d] for d in right if d in unit_of_detection}
        pairs.update((min(a, b), max(a, b)) for a in lu for b in ru if a != b)
    return pairs


def deer_of_detections(cur, detection_ids: Sequence[int]) -> dict[int, int]:
    """Return detection id -> deer id for those that have a sighting."""
    if not detection_ids:
        return {}
    cur.execute(
        "SELECT detection_id, deer_id FROM sightings WHERE detection_id = ANY(%s)",
        (sorted(set(detection_ids)),),
    )
    return dict(cur.fetchall())
