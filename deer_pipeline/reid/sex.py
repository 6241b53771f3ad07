"""Sex by evidence: a confidence-weighted vote over every box of a tracklet or a deer.

One box's class is a guess (the detector calls a doe a buck in about one box in six on the demo
world), so no single box may forbid a match. Each box votes with its per-class scores
(``detections.class_scores``) or, where a source gave one label, with its confidence for that label
and the rest shared by the other classes; a person's class correction outvotes any number of boxes.
The sex constraint applies only where the vote is confident: the winner's share of the votes exceeds
the runner-up's by at least a margin. ``fawn`` is its own class, like ``doe`` and ``buck``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from deer_pipeline.vocabulary import DEER_CLASSES, UNKNOWN_SEX

# A person's correction counts as this many fully confident boxes: it overrides every vote.
HUMAN_WEIGHT = 1.0e6


def box_votes(
    class_name: str,
    confidence: float,
    class_scores: Mapping[str, float] | None = None,
    corrected: str | None = None,
) -> dict[str, float]:
    """Return one box's vote over the deer classes.

    Args:
        class_name: the detector's class for the box.
        confidence: the detector's confidence in ``class_name``.
        class_scores: the box's score for every deer class, when the detector stored them.
        corrected: a person's class for the box (``doe``, ``fawn``, ``buck``), if any.

    Returns:
        Deer class -> weight (empty for a box of no deer class, which votes for nothing).
    """
    if corrected in DEER_CLASSES:
        return {corrected: HUMAN_WEIGHT}
    if class_scores:
        votes = {c: float(class_scores.get(c) or 0.0) for c in DEER_CLASSES}
        return {c: v for c, v in votes.items() if v > 0.0}
    if class_name in DEER_CLASSES:
        # One label with a confidence: the label gets the confidence, the other classes share
        # the rest, so a box called at 0.5 is a weak vote and one at 0.95 a strong one.
        p = min(max(float(confidence), 1e-6), 1.0)
        rest = (1.0 - p) / (len(DEER_CLASSES) - 1)
        return {c: (p if c == class_name else rest) for c in DEER_CLASSES}
    return {}


@dataclass
class SexVote:
    """Summed votes of any number of boxes; add, merge and read the verdict."""

    weights: dict[str, float] = field(default_factory=dict)

    def add(self, votes: Mapping[str, float]) -> SexVote:
        """Add one box's (or another vote's) weights; returns self."""
        for c, w in votes.items():
            self.weights[c] = self.weights.get(c, 0.0) + w
        return self

    def merged(self, other: SexVote) -> SexVote:
        """Return a new vote holding both."""
        return SexVote(dict(self.weights)).add(other.weights)

    @property
    def human(self) -> bool:
        """Whether a person's correction is part of the vote."""
        return any(w >= HUMAN_WEIGHT for w in self.weights.values())

    def leader(self) -> tuple[str, float]:
        """Return (class with most weight, its margin over the runner-up as a share of all).

        ``("unknown", 0.0)`` for no votes. Ties go to the first class in ``DEER_CLASSES`` order.
        """
        total = sum(self.weights.values())
        if total <= 0.0:
            return UNKNOWN_SEX, 0.0
        ranked = sorted(DEER_CLASSES, key=lambda c: (-self.weights.get(c, 0.0), c))
        first, second = (self.weights.get(c, 0.0) for c in ranked[:2])
        return ranked[0], (first - second) / total

    def sex(self, margin: float) -> str:
        """Return the confident sex (``doe``, ``fawn``, ``buck``) or ``unknown``.

        Args:
            margin: the least (winner - runner-up) / total for a confident verdict.
        """
        winner, lead = self.leader()
        return winner if lead >= margin and winner != UNKNOWN_SEX else UNKNOWN_SEX

    def best_guess(self) -> str:
        """Return the leading class however slim its lead (``unknown`` for no votes)."""
        return self.leader()[0]


def conflict(a: SexVote, b: SexVote, margin: float) -> bool:
    """Return whether two votes are each confident and name different classes."""
    sa, sb = a.sex(margin), b.sex(margin)
    return UNKNOWN_SEX not in (sa, sb) and sa != sb


def vote_of(boxes: Iterable[Mapping[str, float]]) -> SexVote:
    """Sum the votes of several boxes."""
    total = SexVote()
    for votes in boxes:
        total.add(votes)
    return total
