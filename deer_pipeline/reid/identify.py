"""Identify the deer of one camera location: reset, tracklets, global clustering, one transaction.

A run is idempotent: it first removes the location's automatic sightings (``burst``, ``match``,
``new``), recomputes the deer they belonged to and deletes deer left empty, then links the
location's detections into tracklets and clusters them by constrained average linkage together with
the existing deer they could be (``reid.units``, ``reid.cluster``), wherever those were seen:
identities are global, and a new location's evidence can join deer found elsewhere (or join two of
them). Deer ids stay where the animal stays (``reid.persist``). Human decisions stay: ``manual``
sightings are never removed and their detections are not re-identified, and
``detection_corrections`` supply the class (which drives the sex constraint) or remove a
``not-deer`` detection from identities altogether. The whole run holds the identity lock, so runs
for several locations queue instead of racing.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field, replace

import numpy as np

from deer_pipeline.reid.cluster import ClusterResult, Unit, cluster_units
from deer_pipeline.reid.matching import MatchConfig
from deer_pipeline.reid.pair_evidence import deer_sides, side_of_detections
from deer_pipeline.reid.pair_join import join_pairs
from deer_pipeline.reid.pair_model import PairModel, Side, make_side
from deer_pipeline.reid.persist import SIGHTING_COLUMNS, write_clusters
from deer_pipeline.reid.store import lock_identities, recompute_gallery, settle
from deer_pipeline.reid.tracklets import Detection, LinkConfig, build_tracklets
from deer_pipeline.reid.units import (
    deer_of_detections,
    deer_units,
    exact_neighbours,
    local_groups,
    nearest_deer,
    not_same_pairs,
    tracklet_unit,
    visit_priors,
)
from deer_pipeline.reid.vectors import read_id_halfvecs

__all__ = ["SIGHTING_COLUMNS", "IdentityReport", "choose_model_version", "identify_location"]

_MODEL_VERSION = """
SELECT e.model_version FROM embeddings e
  JOIN detections d ON d.id = e.detection_id JOIN images i ON i.id = d.image_id
 WHERE i.location_key = %(loc)s
 GROUP BY e.model_version
 ORDER BY e.model_version = %(preferred)s DESC, count(*) DESC, e.model_version
 LIMIT 1
"""

_RESET = """
DELETE FROM sightings s USING detections d, images i
 WHERE s.detection_id = d.id AND d.image_id = i.id AND i.location_key = %s
   AND (s.method <> 'manual' OR EXISTS (SELECT 1 FROM detection_corrections c
                                        WHERE c.detection_id = d.id AND c.class_name = 'not-deer'))
RETURNING s.deer_id, s.detection_id, s.method
"""

# Deer whose gallery vector came from another embedding model but whose sightings have embeddings
# of this one (the model changed and their detections were re-embedded).
_STALE_GALLERY = """
SELECT DISTINCT d.id FROM deer d
  JOIN sightings s ON s.deer_id = d.id
  JOIN embeddings e ON e.detection_id = s.detection_id AND e.model_version = %s
 WHERE d.model_version IS DISTINCT FROM %s
"""

_BY_METHOD = """
SELECT s.method, count(*) FROM sightings s
  JOIN detections d ON d.id = s.detection_id JOIN images i ON i.id = d.image_id
 WHERE i.location_key = %s GROUP BY s.method
"""

_OCCUPIED = """
SELECT d.image_id, s.deer_id FROM sightings s
  JOIN detections d ON d.id = s.detection_id JOIN images i ON i.id = d.image_id
 WHERE i.location_key = %s
"""

# The detections to identify: newest detector version with embeddings of this model, class after
# corrections, not-deer and manually assigned detections left out; frame = rank in the burst.
_PENDING = """
WITH frames AS (
    SELECT i.id, COALESCE(i.burst_id, i.id) AS burst, i.captured_at,
           row_number() OVER (PARTITION BY COALESCE(i.burst_id, i.id)
                              ORDER BY i.captured_at, i.rel_path) - 1 AS frame
      FROM images i WHERE i.location_key = %(loc)s AND i.status = 'ok'),
version AS (
    SELECT d.model_version FROM detections d JOIN frames f ON f.id = d.image_id
      JOIN embeddings e ON e.detection_id = d.id AND e.model_version = %(mv)s
     ORDER BY d.created_at DESC, d.id DESC LIMIT 1)
SELECT d.id, d.image_id, f.burst, f.frame, f.captured_at, COALESCE(c.class_name, d.class_name),
       d.confidence, d.x1, d.y1, d.x2, d.y2, d.class_scores, c.class_name IS NOT NULL,
       d.monochrome
  FROM detections d JOIN frames f ON f.id = d.image_id
  JOIN embeddings e ON e.detection_id = d.id AND e.model_version = %(mv)s
  LEFT JOIN detection_corrections c ON c.detection_id = d.id
 WHERE d.model_version = (SELECT model_version FROM version)
   AND c.class_name IS DISTINCT FROM 'not-deer'
   AND NOT EXISTS (SELECT 1 FROM sightings s WHERE s.detection_id = d.id)
 ORDER BY d.id
"""


@dataclass
class IdentityReport:
    """What one run did, for the asset's metadata."""

    location_key: str
    model_version: str | None
    detections: int = 0
    tracklets: int = 0
    tracklets_matched: int = 0
    deer_new: int = 0
    deer_matched: int = 0
    sightings: Counter = field(default_factory=Counter)
    removed_sightings: int = 0
    deleted_deer: int = 0
    deer_merged: int = 0
    deer_considered: int = 0
    candidate_pairs: int = 0
    pair_model_joins: int = 0
    pair_model_candidates: int = 0
    refused: dict = field(default_factory=dict)
    sex_conflict_deer: int = 0
    sex_conflict_tracklets: int = 0
    load_seconds: float = 0.0
    candidate_seconds: float = 0.0
    cluster_seconds: float = 0.0
    match_seconds: float = 0.0
    write_seconds: float = 0.0
    seconds: float = 0.0

    @property
    def ms_per_tracklet(self) -> float:
        """Mean matching time per tracklet in milliseconds."""
        return 1000.0 * self.match_seconds / self.tracklets if self.tracklets else 0.0


def choose_model_version(cur, location_key: str, preferred: str | None = None) -> str | None:
    """Return the embedding model to identify a location with (None: it has no embeddings).

    ``preferred`` (the configured embedder's version) wins when the location has embeddings of
    it; otherwise the model that covers most of the location's detections.
    """
    cur.execute(_MODEL_VERSION, {"loc": location_key, "preferred": preferred or ""})
    row = cur.fetchone()
    return row[0] if row else None


def reset_location(cur, location_key: str) -> tuple[int, set[int], dict[int, int]]:
    """Remove the location's automatic sightings (and any of ``not-deer`` detections).

    Returns:
        (sightings removed, deer deleted, detection id -> id of the deleted deer it was in);
        a deer founded again from the same detections takes its old id back.
    """
    cur.execute(_RESET, (location_key,))
    removed = cur.fetchall()
    touched = {deer_id for deer_id, _, _ in removed}
    deleted = settle(cur, touched)
    founders = {det: deer for deer, det, _ in removed if deer in deleted}
    return len(removed), deleted, founders


def load_pending(cur, location_key: str, model_version: str) -> list[Detection]:
    """Load the location's detections that need identities, with their embeddings."""
    cur.execute(_PENDING, {"loc": location_key, "mv": model_version})
    rows = cur.fetchall()
    if not rows:
        return []
    ids, vectors = read_id_halfvecs(
        cur,
        "SELECT detection_id, embedding FROM embeddings"
        " WHERE detection_id = ANY(%s) AND model_version = %s",
        ([r[0] for r in rows], model_version),
    )
    by_id = dict(zip(ids.tolist(), vectors, strict=True))
    return [
        Detection(
            id=r[0],
            image_id=r[1],
            burst=r[2],
            frame=r[3],
            captured_at=r[4],
            class_name=r[5],
            confidence=float(r[6]),
            box=(r[7], r[8], r[9], r[10]),
            embedding=by_id[r[0]],
            class_scores=r[11],
            corrected=bool(r[12]),
            monochrome=r[13],
        )
        for r in rows
    ]


def identify_location(
    conn,
    location_key: str,
    match: MatchConfig | None = None,
    link: LinkConfig | None = None,
    model_version: str | None = None,
    preferred_version: str | None = None,
    pair_model: PairModel | None = None,
) -> IdentityReport:
    """Re-derive the identities of one location and commit.

    Args:
        conn: a psycopg2 connection (not autocommit); committed on success, rolled back on error.
        location_key: the partition key.
        match: gallery matching settings.
        link: tracklet linking settings.
        model_version: the embedding model to use (overrides the choice below).
        preferred_version: the configured embedder's version, used when the location has
            embeddings of it; else the model covering most of its detections.
        pair_model: the pair model of that embedding model (its calibration's, or this
            database's refit); with ``match.pair_join_probability`` set, clusters it calls one
            animal at that probability are joined after the clustering.

    Returns:
        Counts and timings of the run.
    """
    start = time.perf_counter()
    try:
        with conn.cursor() as cur:
            lock_identities(cur)
            version = model_version or choose_model_version(cur, location_key, preferred_version)
            report = IdentityReport(location_key, version)
            report.removed_sightings, deleted, founders = reset_location(cur, location_key)
            report.deleted_deer = len(deleted)
            if version is not None:
                _identify(cur, report, location_key, version, match, link, founders, pair_model)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    report.seconds = time.perf_counter() - start
    return report


def _identify(
    cur,
    report: IdentityReport,
    location_key: str,
    version: str,
    match: MatchConfig | None,
    link: LinkConfig | None,
    founders: dict[int, int],
    pair_model: PairModel | None = None,
) -> None:
    match = match or MatchConfig()
    link = replace(link or LinkConfig(), sex_margin=match.sex_margin)
    t0 = time.perf_counter()
    cur.execute(_STALE_GALLERY, (version, version))
    recompute_gallery(cur, [r[0] for r in cur.fetchall()], version)
    detections = load_pending(cur, location_key, version)
    tracklets = build_tracklets(detections, link)
    t1 = time.perf_counter()
    new_units = [tracklet_unit(t) for t in tracklets]
    edges = exact_neighbours(tracklets, match.candidates)
    priors = visit_priors(tracklets, match)
    groups = local_groups(new_units, edges | set(priors), priors, match)
    queries = [np.sum([new_units[i].total for i in g], axis=0) for g in groups]
    nearest = nearest_deer(cur, queries, version, match)
    cur.execute(_OCCUPIED, (location_key,))
    here = {deer_id for _, deer_id in cur.fetchall()}
    wanted = sorted(here | {d for found in nearest for d in found})
    deer_ids, existing = deer_units(cur, wanted, version)
    units = new_units + existing
    unit_of_deer = {d: len(tracklets) + k for k, d in enumerate(deer_ids)}
    edges |= {
        (i, unit_of_deer[d])
        for group, found in zip(groups, nearest, strict=True)
        for d in found
        if d in unit_of_deer
        for i in group
    }
    unit_of_detection = {m.id: i for i, t in enumerate(tracklets) for m in t.members}
    cur.execute("SELECT left_detections || right_detections FROM deer_not_same")
    named = [d for (ids,) in cur.fetchall() for d in ids if d not in unit_of_detection]
    for det, deer_id in deer_of_detections(cur, named).items():
        if deer_id in unit_of_deer:
            unit_of_detection[det] = unit_of_deer[deer_id]
    cannot = not_same_pairs(cur, unit_of_detection)
    t2 = time.perf_counter()
    result = cluster_units(units, sorted(edges), match.threshold, match.sex_margin, priors, cannot)
    if pair_model is not None and match.pair_join_probability is not None:
        sides = [side_of_detections(t.members, {location_key}) for t in tracklets]
        sides += _deer_sides(cur, deer_ids, existing, version)
        joined = join_pairs(
            units,
            result.clusters,
            sides,
            pair_model,
            match.pair_join_probability,
            match.sex_margin,
            edges | set(priors),
            cannot,
            match.pair_neighbours,
        )
        refused = Counter(result.refused) + Counter(joined.refused)
        result = ClusterResult(
            joined.clusters, result.merges + joined.joins, {k: refused[k] for k in result.refused}
        )
        report.pair_model_joins = joined.joins
        report.pair_model_candidates = joined.candidate_pairs
    t3 = time.perf_counter()
    write_clusters(cur, report, tracklets, units, result, founders, version, match)
    report.detections = len(detections)
    report.tracklets = len(tracklets)
    report.deer_considered = len(existing)
    report.candidate_pairs = len(edges)
    report.refused = dict(result.refused)
    report.load_seconds = t1 - t0
    report.candidate_seconds = t2 - t1
    report.cluster_seconds = t3 - t2
    report.match_seconds = t3 - t1
    report.write_seconds = time.perf_counter() - t3
    cur.execute(_BY_METHOD, (location_key,))
    report.sightings = Counter(dict(cur.fetchall()))


def _deer_sides(cur, deer_ids: list[int], units: list[Unit], version: str) -> list[Side]:
    """Existing deer as pair-model sides (a deer with no loadable sighting: its mean alone)."""
    found = deer_sides(cur, deer_ids, version)
    out = []
    for d, u in zip(deer_ids, units, strict=True):
        if d not in found:
            mean = np.asarray(u.total, np.float64)
            mean = mean / (np.linalg.norm(mean) or 1.0)
            found[d] = make_side(mean[None], vote=u.vote, count=u.count, total=u.total)
        out.append(found[d])
    return out
