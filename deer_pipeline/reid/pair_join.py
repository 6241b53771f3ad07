"""Joining clusters the embedding alone leaves apart, where the pair model is sure enough.

Average linkage at the model's threshold (``reid/cluster.py``) keeps precision but splits a deer
whose day and infrared-night sightings sit near cosine 0.5. This second pass looks at pairs of
the resulting clusters, asks the pair model (``reid/pair_model.py``) how likely each is one
animal, and joins them best first while the probability reaches the model's cut. Candidates are
the clusters a kNN edge of the first pass links, plus each cluster's nearest others by their best
detection-to-detection cosine, overall and across conditions (a day cluster's nearest night
clusters): the mean vectors of a day half and a night half can be far apart while single
sightings are close. The constraints are those of the first pass, unchanged: never across a
person's "not the same deer", a shared frame, confidently different sexes, or two deer that both
hold a person's decisions. After a join the new cluster is scored again against the candidates of
both parts.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from deer_pipeline.reid.cluster import Unit
from deer_pipeline.reid.pair_model import (
    Neighbourhood,
    PairModel,
    Side,
    merge_sides,
    pair_features,
)
from deer_pipeline.reid.sex import SexVote, conflict


@dataclass(frozen=True)
class JoinResult:
    """Clusters after the pass (sorted lists of unit indices) and what it did."""

    clusters: list[list[int]]
    joins: int
    candidate_pairs: int
    refused: dict[str, int] = field(default_factory=dict)


@dataclass
class _Group:
    members: list[int]
    side: Side
    vote: SexVote
    images: set[int]
    manual: bool
    cannot: set[int]
    near: set[int]
    version: int = 0


def join_pairs(
    units: Sequence[Unit],
    clusters: Sequence[Sequence[int]],
    sides: Sequence[Side],
    model: PairModel,
    cut: float,
    sex_margin: float,
    edges: Iterable[tuple[int, int]] = (),
    cannot_link: Iterable[tuple[int, int]] = (),
    neighbours: int = 5,
) -> JoinResult:
    """Join clusters best first while the pair model's probability reaches ``cut``.

    Args:
        units: the units the clusters are made of (their frames, votes, manual flags).
        clusters: the first pass's clusters (lists of unit indices).
        sides: the evidence of each unit (aligned with ``units``).
        model: the pair model.
        cut: least probability of one animal to join.
        sex_margin: confident sex votes at this margin forbid a join (``reid.sex``).
        edges: candidate unit pairs of the first pass; clusters they link are candidates.
        cannot_link: unit pairs never to share a cluster.
        neighbours: nearest clusters per cluster (overall and across conditions).

    Returns:
        The clusters in order of their smallest unit, joins made and refusals by reason.
    """
    cluster_of = {u: c for c, members in enumerate(clusters) for u in members}
    groups: dict[int, _Group] = {}
    for c, members in enumerate(clusters):
        vote = SexVote()
        for u in members:
            vote.add(units[u].vote.weights)
        groups[c] = _Group(
            members=sorted(members),
            side=merge_sides([sides[u] for u in sorted(members)]),
            vote=vote,
            images=set().union(*(units[u].images for u in members)),
            manual=any(units[u].manual for u in members),
            cannot=set(),
            near=set(),
        )
    for i, j in cannot_link:
        a, b = cluster_of[i], cluster_of[j]
        if a != b:
            groups[a].cannot.add(b)
            groups[b].cannot.add(a)
    hood = Neighbourhood([groups[c].side for c in range(len(clusters))])
    candidates = hood.nearest(neighbours)
    candidates |= {
        (min(a, b), max(a, b))
        for a, b in ((cluster_of[i], cluster_of[j]) for i, j in edges)
        if a != b
    }
    for a, b in candidates:
        groups[a].near.add(b)
        groups[b].near.add(a)
    heap: list[tuple[float, int, int, int, int]] = []

    def push(a: int, others: Iterable[int]) -> None:
        others = sorted(others)
        if not others:
            return
        x = np.stack(
            [pair_features(groups[a].side, groups[b].side, hood.ranks(a, b)) for b in others]
        )
        for b, p in zip(others, model.probability(x).tolist(), strict=True):
            if p >= cut:
                lo, hi = min(a, b), max(a, b)
                heapq.heappush(heap, (-p, lo, hi, groups[lo].version, groups[hi].version))

    for a in sorted(groups):
        push(a, (b for b in groups[a].near if b > a))
    refused = {"same_frame": 0, "sex": 0, "not_same": 0, "manual": 0}
    joins = 0
    while heap:
        _, a, b, va, vb = heapq.heappop(heap)
        if a not in groups or b not in groups:
            continue
        ga, gb = groups[a], groups[b]
        if ga.version != va or gb.version != vb:
            continue
        reason = _refusal(ga, gb, b, sex_margin)
        if reason:
            refused[reason] += 1
            continue
        joins += 1
        _absorb(groups, a, b)
        hood.join(a, b)
        push(a, groups[a].near)
    ordered = sorted(sorted(g.members) for g in groups.values())
    return JoinResult(ordered, joins, len(candidates), refused)


def _refusal(ga: _Group, gb: _Group, b: int, sex_margin: float) -> str | None:
    if b in ga.cannot:
        return "not_same"
    if ga.manual and gb.manual:
        return "manual"
    if not ga.images.isdisjoint(gb.images):
        return "same_frame"
    if conflict(ga.vote, gb.vote, sex_margin):
        return "sex"
    return None


def _absorb(groups: dict[int, _Group], a: int, b: int) -> None:
    ga, gb = groups[a], groups.pop(b)
    ga.members = sorted(ga.members + gb.members)
    ga.side = merge_sides([ga.side, gb.side])
    ga.vote = ga.vote.merged(gb.vote)
    ga.images |= gb.images
    ga.manual = ga.manual or gb.manual
    ga.version += 1
    for attr in ("cannot", "near"):
        mine, theirs = getattr(ga, attr), getattr(gb, attr)
        for x in theirs:
            if x != a:
                mine.add(x)
                other = getattr(groups[x], attr)
                other.discard(b)
                other.add(a)
        mine.discard(b)
        mine.discard(a)
