"""Turning clusters into deer and sightings: ids that stay put, methods, sexes, conflicts.

A cluster that holds an existing deer keeps that deer's id (the one holding a person's decisions,
else the oldest); other existing deer it absorbed hand over their sightings and disappear. A
cluster of new tracklets only takes back the id of the deer its detections were in before this
run's reset (the most of them; ties to the smallest id), so re-runs keep ids, and founds a deer
otherwise. Sex is the cluster's vote where confident, else ``unknown``; tracklets confidently of
another sex than their deer are counted as sex conflicts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from deer_pipeline.db.columns import copy_columns
from deer_pipeline.db.copy import copy_rows
from deer_pipeline.reid.cluster import ClusterResult, Unit
from deer_pipeline.reid.matching import MatchConfig
from deer_pipeline.reid.sex import SexVote
from deer_pipeline.reid.store import settle
from deer_pipeline.reid.tracklets import Tracklet
from deer_pipeline.vocabulary import UNKNOWN_SEX

SIGHTING_COLUMNS = copy_columns("sightings")

_SET_SEX = """
UPDATE deer d SET sex = v.sex
  FROM unnest(%s::bigint[], %s::text[]) AS v(id, sex)
 WHERE d.id = v.id AND d.sex IS DISTINCT FROM v.sex
"""


def _unit_cos(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float(np.dot(a, b) / (na * nb)) if na > 0 and nb > 0 else 0.0


def _reused_id(tracklets: Sequence[Tracklet], founders: dict[int, int], used: set[int]):
    votes = Counter(
        founders[m.id]
        for t in tracklets
        for m in t.members
        if m.id in founders and founders[m.id] not in used
    )
    if not votes:
        return None
    best = max(votes.values())
    return min(d for d, c in votes.items() if c == best)


def write_clusters(
    cur,
    report,
    tracklets: Sequence[Tracklet],
    units: Sequence[Unit],
    result: ClusterResult,
    founders: dict[int, int],
    version: str,
    match: MatchConfig,
) -> None:
    """Store the clusters that hold new tracklets as deer and sightings; fill ``report``.

    Args:
        cur: a cursor in the run's transaction (holding the identity lock).
        report: the run's ``IdentityReport`` (deer new, matched, merged, sex conflicts).
        tracklets: the new tracklets; unit ``i`` is tracklet ``i`` for ``i < len(tracklets)``.
        units: every unit clustered (tracklets, then existing deer).
        result: the clustering.
        founders: detection id -> deer it was in before this run's reset (now deleted).
        version: the embedding model of the gallery vectors.
        match: the settings (sex margin).
    """
    n_new = len(tracklets)
    rows: dict[str, list] = {name: [] for name, _ in SIGHTING_COLUMNS}
    used: set[int] = set()
    touched: set[int] = set()
    absorbed: set[int] = set()
    sexes: dict[int, str] = {}
    for cluster in result.clusters:
        new = [i for i in cluster if i < n_new]
        if not new:
            continue
        old = [units[i] for i in cluster if i >= n_new]
        total = np.sum([units[i].total for i in cluster], axis=0)
        vote = SexVote()
        for i in cluster:
            vote.add(units[i].vote.weights)
        sex = vote.sex(match.sex_margin)
        if old:
            keep = min(old, key=lambda u: (not u.manual, u.deer_id)).deer_id
            gone = sorted(u.deer_id for u in old if u.deer_id != keep)
            if gone:
                cur.execute(
                    "UPDATE sightings SET deer_id = %s WHERE deer_id = ANY(%s)", (keep, gone)
                )
                absorbed.update(gone)
            deer_id = keep
            report.deer_matched += 1
        else:
            deer_id = _found(cur, _reused_id([tracklets[i] for i in new], founders, used), version)
            report.deer_new += 1
        used.add(deer_id)
        touched.add(deer_id)
        sexes[deer_id] = sex
        conflicts = sum(
            1
            for i in cluster
            if sex != UNKNOWN_SEX and units[i].vote.sex(match.sex_margin) not in (sex, UNKNOWN_SEX)
        )
        report.sex_conflict_tracklets += conflicts
        report.sex_conflict_deer += bool(conflicts)
        for rank, i in enumerate(new):
            t = tracklets[i]
            founding = not old and rank == 0
            rest = total - units[i].total
            similarity = None if founding else _unit_cos(units[i].total, rest)
            for k, m in enumerate(t.members):
                if k == 0:
                    method, sim = ("new", None) if founding else ("match", similarity)
                else:
                    method, sim = "burst", float(np.dot(m.embedding, t.embedding))
                if method == "new":
                    sim = float(np.dot(m.embedding, t.embedding))
                for name, value in zip(
                    ("detection_id", "deer_id", "similarity", "method", "tracklet_key"),
                    (m.id, deer_id, sim, method, t.key),
                    strict=True,
                ):
                    rows[name].append(value)
    report.deer_merged += len(absorbed)
    report.tracklets_matched = n_new - report.deer_new
    copy_rows(cur, "sightings", SIGHTING_COLUMNS, rows)
    settle(cur, touched | absorbed, version)
    if sexes:
        ids = sorted(sexes)
        cur.execute(_SET_SEX, (ids, [sexes[d] for d in ids]))


def _found(cur, old_id: int | None, version: str) -> int:
    if old_id is None:
        cur.execute(
            "INSERT INTO deer (sex, model_version) VALUES (%s, %s) RETURNING id",
            (UNKNOWN_SEX, version),
        )
    else:
        cur.execute(
            "INSERT INTO deer (id, sex, model_version) VALUES (%s, %s, %s) RETURNING id",
            (old_id, UNKNOWN_SEX, version),
        )
    return int(cur.fetchone()[0])
