"""Constrained average-linkage clustering of identity units over a sparse candidate graph.

A unit is a group of detections known to show one animal: a tracklet, or a deer that already
exists (its sightings at other locations, a person's merge). Average linkage scores two clusters
by the mean cosine similarity over every pair of their detections, which is exactly
``dot(sum_a, sum_b) / (n_a * n_b)`` for L2-normalised embeddings, so each cluster keeps only the
sum of its vectors and its size. Priors (time and place) add a bonus to chosen detection pairs;
their totals are kept per cluster pair. Merges happen best first, only between clusters joined by
a candidate edge (from a kNN search), only at or above the threshold, and never across a
cannot-link: a shared frame, confidently different sexes, a person's "not the same deer", or two
deer that both hold a person's decisions. Average linkage is reducible (a merged cluster's score
with a third lies between its parts'), so stale heap entries can simply be skipped.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from deer_pipeline.reid.sex import SexVote
from deer_pipeline.vocabulary import UNKNOWN_SEX


@dataclass
class Unit:
    """One must-link group of detections.

    Attributes:
        total: sum of its detections' L2-normalised embeddings.
        count: number of detections.
        vote: its sex vote.
        images: image ids it occupies (two units sharing one can never merge).
        deer_id: the existing deer it is (None for a new tracklet).
        manual: whether it holds a person's decisions (``manual`` sightings).
    """

    total: np.ndarray
    count: int
    vote: SexVote
    images: frozenset[int] = frozenset()
    deer_id: int | None = None
    manual: bool = False


@dataclass
class _Cluster:
    count: int
    vote: SexVote
    images: set[int]
    manual: bool
    members: list[int]
    margin: float
    sex: str = ""
    version: int = 0
    neighbours: set[int] = field(default_factory=set)
    bonus: dict[int, float] = field(default_factory=dict)
    cannot: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.sex = self.vote.sex(self.margin)


@dataclass(frozen=True)
class ClusterResult:
    """The clusters (lists of unit indices, each sorted) and counts of what happened."""

    clusters: list[list[int]]
    merges: int
    refused: dict[str, int]


def cluster_units(
    units: list[Unit],
    edges: Iterable[tuple[int, int]],
    threshold: float,
    sex_margin: float,
    bonus: dict[tuple[int, int], float] | None = None,
    cannot_link: Iterable[tuple[int, int]] = (),
) -> ClusterResult:
    """Agglomerate units by average linkage over the candidate graph, under constraints.

    Args:
        units: the units; their ``total`` vectors must share one dimension.
        edges: candidate pairs (unit indices); only clusters joined by one may merge.
        threshold: the least average-linkage score (mean pairwise cosine plus priors) to merge.
        sex_margin: the vote margin above which a sex is confident (see ``reid.sex``).
        bonus: (i, j) -> prior added to the mean, as a per-detection-pair bonus of units i, j.
        cannot_link: unit pairs that must never share a cluster.

    Returns:
        Clusters in order of their smallest unit index, and merge counts.
    """
    if not units:
        return ClusterResult([], 0, {})
    totals = np.stack([np.asarray(u.total, dtype=np.float32) for u in units])
    clusters = {
        i: _Cluster(
            u.count, SexVote(dict(u.vote.weights)), set(u.images), u.manual, [i], sex_margin
        )
        for i, u in enumerate(units)
    }
    for (i, j), b in (bonus or {}).items():
        if i != j:
            pair_total = b * units[i].count * units[j].count
            clusters[i].bonus[j] = clusters[i].bonus.get(j, 0.0) + pair_total
            clusters[j].bonus[i] = clusters[j].bonus.get(i, 0.0) + pair_total
            clusters[i].neighbours.add(j)
            clusters[j].neighbours.add(i)
    for i, j in cannot_link:
        if i != j:
            clusters[i].cannot.add(j)
            clusters[j].cannot.add(i)
    for i, j in edges:
        if i != j:
            clusters[i].neighbours.add(j)
            clusters[j].neighbours.add(i)
    heap: list[tuple[float, int, int, int, int]] = []

    def push(a: int, others: list[int]) -> None:
        if not others:
            return
        ca = clusters[a]
        idx = np.fromiter(others, dtype=np.int64, count=len(others))
        dots = (totals[idx] @ totals[a]).astype(np.float64)
        if ca.bonus:
            dots += np.fromiter((ca.bonus.get(b, 0.0) for b in others), np.float64, len(others))
        sizes = np.fromiter((clusters[b].count for b in others), np.float64, len(others))
        scores = dots / (ca.count * sizes)
        for k in np.flatnonzero(scores >= threshold).tolist():
            b = others[k]
            lo, hi = (a, b) if a < b else (b, a)
            item = (-float(scores[k]), lo, hi, clusters[lo].version, clusters[hi].version)
            heapq.heappush(heap, item)

    for a in sorted(clusters):
        push(a, sorted(b for b in clusters[a].neighbours if b > a))
    refused = {"same_frame": 0, "sex": 0, "not_same": 0, "manual": 0}
    merges = 0
    while heap:
        _, a, b, va, vb = heapq.heappop(heap)
        if a not in clusters or b not in clusters:
            continue
        ca, cb = clusters[a], clusters[b]
        if ca.version != va or cb.version != vb:
            continue
        reason = _refusal(ca, cb, b)
        if reason:
            refused[reason] += 1
            continue
        merges += 1
        _absorb(clusters, totals, a, b)
        push(a, sorted(clusters[a].neighbours))
    ordered = sorted(sorted(c.members) for c in clusters.values())
    return ClusterResult(ordered, merges, refused)


def _refusal(ca: _Cluster, cb: _Cluster, b: int) -> str | None:
    if b in ca.cannot:
        return "not_same"
    if ca.manual and cb.manual:
        return "manual"
    if not ca.images.isdisjoint(cb.images):
        return "same_frame"
    if UNKNOWN_SEX not in (ca.sex, cb.sex) and ca.sex != cb.sex:
        return "sex"
    return None


def _absorb(clusters: dict[int, _Cluster], totals: np.ndarray, a: int, b: int) -> None:
    """Merge cluster ``b`` into ``a`` (``a`` keeps its index, with a new version)."""
    ca, cb = clusters.pop(a), clusters.pop(b)
    totals[a] += totals[b]
    ca.count += cb.count
    ca.vote = ca.vote.merged(cb.vote)
    ca.sex = ca.vote.sex(ca.margin)
    ca.images |= cb.images
    ca.manual = ca.manual or cb.manual
    ca.members += cb.members
    ca.version += 1
    for x, v in cb.bonus.items():
        if x == a:
            continue
        ca.bonus[x] = ca.bonus.get(x, 0.0) + v
        other = clusters[x].bonus
        other[a] = other.get(a, 0.0) + other.pop(b, 0.0)
    ca.bonus.pop(b, None)
    for x in cb.cannot:
        if x != a:
            ca.cannot.add(x)
            clusters[x].cannot.discard(b)
            clusters[x].cannot.add(a)
    ca.cannot.discard(b)
    for x in cb.neighbours:
        if x != a:
            ca.neighbours.add(x)
            clusters[x].neighbours.discard(b)
            clusters[x].neighbours.add(a)
    ca.neighbours.discard(b)
    ca.neighbours.discard(a)
    clusters[a] = ca
