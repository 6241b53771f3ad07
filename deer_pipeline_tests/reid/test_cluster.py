"""Constrained average-linkage clustering and the sex vote, on hand-made vectors (no database)."""

from __future__ import annotations

import numpy as np

from deer_pipeline.reid.cluster import Unit, cluster_units
from deer_pipeline.reid.sex import HUMAN_WEIGHT, SexVote, box_votes, conflict

DOE = SexVote().add(box_votes("doe", 0.9))
BUCK = SexVote().add(box_votes("buck", 0.9))


def _unit(v, vote=None, images=(), deer_id=None, manual=False) -> Unit:
    v = np.asarray(v, dtype=np.float64)
    return Unit(v / np.linalg.norm(v), 1, vote or SexVote(), frozenset(images), deer_id, manual)


def _triangle():
    """cos(A, B) = 0.9, cos(B, C) = 0.88, cos(A, C) = 0.7."""
    a = [1.0, 0.0, 0.0]
    b = [0.9, np.sqrt(1 - 0.81), 0.0]
    y = (0.88 - 0.63) / b[1]
    c = [0.7, y, np.sqrt(1 - 0.49 - y * y)]
    return a, b, c


def test_average_linkage_uses_every_pair():
    units = [_unit(v) for v in _triangle()]
    edges = [(0, 1), (1, 2), (0, 2)]
    # {A, B} against C averages 0.7 and 0.88: 0.79, below 0.85 although B alone is at 0.88.
    assert cluster_units(units, edges, 0.85, 0.5).clusters == [[0, 1], [2]]
    assert cluster_units(units, edges, 0.75, 0.5).clusters == [[0, 1, 2]]


def test_only_candidate_edges_merge():
    units = [_unit([1, 0]), _unit([1, 0.01]), _unit([1, 0.02])]
    assert cluster_units(units, [(0, 1)], 0.5, 0.5).clusters == [[0, 1], [2]]


def test_cannot_links_hold_through_merges():
    same = [1.0, 0.0]
    edges = [(0, 1), (1, 2), (0, 2)]
    not_same = cluster_units([_unit(same)] * 3, edges, 0.5, 0.5, cannot_link=[(0, 2)])
    assert not_same.clusters == [[0, 1], [2]] and not_same.refused["not_same"] == 1
    frames = [_unit(same, images={1}), _unit(same, images={2}), _unit(same, images={1})]
    shared = cluster_units(frames, edges, 0.5, 0.5)
    assert shared.clusters == [[0, 1], [2]] and shared.refused["same_frame"] == 1
    sexes = [_unit(same, DOE), _unit(same), _unit(same, BUCK)]
    assert cluster_units(sexes, edges, 0.5, 0.5).clusters == [[0, 1], [2]]
    people = [_unit(same, manual=True), _unit(same), _unit(same, manual=True)]
    assert cluster_units(people, edges, 0.5, 0.5).clusters == [[0, 1], [2]]


def test_prior_tips_a_close_pair():
    units = [_unit([1.0, 0.0]), _unit([0.78, np.sqrt(1 - 0.78**2)])]
    assert cluster_units(units, [(0, 1)], 0.8, 0.5).clusters == [[0], [1]]
    assert cluster_units(units, [], 0.8, 0.5, bonus={(0, 1): 0.03}).clusters == [[0, 1]]


def test_sex_vote():
    assert box_votes("doe", 0.9) == {"doe": 0.9, "fawn": (1 - 0.9) / 2, "buck": (1 - 0.9) / 2}
    assert box_votes("buck", 0.9, {"doe": 0.5, "buck": 0.4, "fawn": 0.0}) == {
        "doe": 0.5,
        "buck": 0.4,
    }
    assert box_votes("buck", 0.9, {"buck": 0.9}, corrected="doe") == {"doe": HUMAN_WEIGHT}
    assert box_votes("animal", 0.8) == {}
    unsure = SexVote().add({"doe": 0.5, "buck": 0.4})
    assert unsure.best_guess() == "doe" and unsure.sex(0.3) == "unknown"
    three_to_one = SexVote()
    for cls in ("doe", "doe", "doe", "buck"):
        three_to_one.add(box_votes(cls, 1.0))
    assert three_to_one.leader() == ("doe", 0.5) and three_to_one.sex(0.5) == "doe"
    assert conflict(DOE, BUCK, 0.5) and not conflict(DOE, unsure, 0.5)
    fixed = BUCK.merged(SexVote().add(box_votes("buck", 0.9, None, corrected="doe")))
    assert fixed.sex(0.5) == "doe" and fixed.human
