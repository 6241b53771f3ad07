"""The pair model: how likely two groups of detections show one animal, from all their evidence.

One cosine cut cannot tell who is who: a deer by day and the same deer in infrared at night sit
near cosine 0.5 while two look-alikes by day reach 0.6, and the cut that fits moves from herd to
herd. So review (ranking what to ask) and identities (joining units the embedding alone leaves
apart) share one small model over the evidence of a *pair of sides*: the cosines split by
condition (day-day, night-night, day-night), how much of each side is night, the time between
them, whether one camera saw both, their sex votes and their sizes.

It is a standardised logistic regression in plain numpy. Its starting weights are fitted by the
workshop on synthetic worlds and stored with the re-ID model in its calibration
(``reid/calibration.py``, ``pair_model``); :meth:`PairModel.refit` is a MAP fit whose Gaussian
prior is centred on the current weights, so a database's few human decisions move it gently and
many move it far. Nothing here touches SQL (``reid/pair_evidence.py`` loads sides).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deer_pipeline.reid.sex import SexVote
from deer_pipeline.vocabulary import DEER_CLASSES

FORMAT = 1
"""Version of the serialised form; bump when a feature changes meaning."""

FEATURES: tuple[str, ...] = (
    "mean_cosine",  # cosine of the two sides' mean vectors
    "average_cosine",  # mean cosine over every detection pair (the clustering's score)
    "best_cosine",  # most similar detection pair
    "median_cosine",  # median detection pair
    "day_day_cosine",  # mean cosine over colour-colour pairs (0 when there are none)
    "night_night_cosine",  # over monochrome-monochrome pairs
    "day_night_cosine",  # over colour-monochrome pairs
    "day_day_best",  # most similar colour-colour pair (0 when there are none)
    "night_night_best",
    "day_night_best",
    "has_day_day",  # whether such pairs exist (so a 0 above means "none", not "unalike")
    "has_night_night",
    "has_day_night",
    "night_fraction_low",  # the smaller of the two sides' monochrome share
    "night_fraction_high",  # the larger
    "log_hours_apart",  # log1p of the hours between the closest detections of the two sides
    "same_camera",  # 1 when a location saw both sides
    "sex_agreement",  # probability two boxes drawn from the two votes name the same class
    "sex_margin_low",  # the weaker side's vote margin ((winner - runner-up) / total)
    "sex_margin_high",
    "same_sex_leader",  # 1 when both votes lead with the same class
    "log_size_low",  # log1p of the smaller side's detection count
    "log_size_high",
    # Where each side stands among the other's neighbours (0: its nearest), from a
    # :class:`Neighbourhood` of every side in play; a pair scored alone counts as nearest.
    "log_rank_any",  # log1p of the worse of the two ranks by best detection cosine
    "log_rank_cross",  # the same among sides compared across day/night (0 without such pairs)
)

MAX_VECTORS = 48
"""Detections per side that enter the detection-to-detection figures (evenly spaced, in order)."""

UNKNOWN_HOURS = 24.0 * 30
"""Time gap assumed when a side has no capture times (a month: no time evidence either way)."""


@dataclass(frozen=True)
class Side:
    """One group of detections believed to be one animal (a tracklet, a cluster, a deer).

    Attributes:
        vectors: (n, d) unit-norm embeddings of (up to ``MAX_VECTORS`` of) its detections.
        monochrome: (n,) per detection 1.0 infrared/monochrome frame, 0.0 colour, NaN unknown.
        times: (n,) capture times in seconds since the epoch, NaN unknown.
        locations: the location keys its detections were taken at.
        vote: its summed sex vote (``reid.sex``).
        count: how many detections it holds (may exceed ``len(vectors)``).
        total: sum of all its detections' unit vectors (its mean direction); defaults to the
            sum of ``vectors``.
    """

    vectors: np.ndarray
    monochrome: np.ndarray
    times: np.ndarray
    locations: frozenset[str] = frozenset()
    vote: SexVote = field(default_factory=SexVote)
    count: int = 0
    total: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.vectors)
        if len(self.monochrome) != n or len(self.times) != n:
            raise ValueError("a side's vectors, monochrome flags and times must align")
        if n == 0:
            raise ValueError("a side needs at least one detection")

    @property
    def size(self) -> int:
        """Detections held (``count``, or the vectors given when it was not set)."""
        return max(self.count, len(self.vectors))

    @property
    def direction(self) -> np.ndarray:
        """The unit mean direction of all its detections."""
        total = self.total if self.total is not None else self.vectors.sum(axis=0)
        total = np.asarray(total, np.float64)
        norm = float(np.linalg.norm(total))
        return total / norm if norm > 0 else total

    @property
    def night_fraction(self) -> float:
        """Share of its detections (with a known condition) in monochrome frames; 0 if unknown."""
        known = self.monochrome[~np.isnan(self.monochrome)]
        return float(known.mean()) if len(known) else 0.0


def make_side(
    vectors: np.ndarray,
    monochrome: Sequence[bool | None] | None = None,
    times: Sequence[float | None] | None = None,
    locations: Iterable[str] = (),
    vote: SexVote | None = None,
    count: int | None = None,
    total: np.ndarray | None = None,
) -> Side:
    """Build a side, keeping at most ``MAX_VECTORS`` evenly spaced detections.

    Args:
        vectors: (n, d) unit-norm embeddings in a stable order (e.g. by detection id).
        monochrome: per detection True/False/None (unknown); None: all unknown.
        times: per detection capture time in epoch seconds or None; None: all unknown.
        locations: location keys of its detections.
        vote: its sex vote; None: no votes.
        count: detections it holds; default ``n``.
        total: sum of all its unit vectors; default the sum of ``vectors`` (before thinning).
    """
    vectors = np.asarray(vectors, np.float32)
    n = len(vectors)
    mono = np.array([np.nan if m is None else float(m) for m in (monochrome or [None] * n)])
    when = np.array([np.nan if t is None else float(t) for t in (times or [None] * n)])
    if total is None:
        total = vectors.astype(np.float64).sum(axis=0)
    keep = _thin(n)
    return Side(
        vectors=vectors[keep],
        monochrome=mono[keep],
        times=when[keep],
        locations=frozenset(locations),
        vote=vote or SexVote(),
        count=count if count is not None else n,
        total=np.asarray(total, np.float64),
    )


def _thin(n: int) -> np.ndarray:
    if n <= MAX_VECTORS:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, MAX_VECTORS).round().astype(np.int64))


def _shares(vote: SexVote) -> np.ndarray:
    w = np.array([max(vote.weights.get(c, 0.0), 0.0) for c in DEER_CLASSES], np.float64)
    total = w.sum()
    return w / total if total > 0 else np.full(len(DEER_CLASSES), 1.0 / len(DEER_CLASSES))


def pair_features(a: Side, b: Side, ranks: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Return the evidence of one pair of sides, in ``FEATURES`` order (symmetric in a, b).

    Args:
        a: one side.
        b: the other.
        ranks: the worse of the two sides' ranks among each other's neighbours, by best
            detection cosine overall and across day/night (``Neighbourhood.ranks``); (0, 0)
            for a pair scored on its own.

    Returns:
        (len(FEATURES),) float64.
    """
    sims = (a.vectors @ b.vectors.T).astype(np.float64)
    flat = sims.ravel()
    ma, mb = a.monochrome[:, None], b.monochrome[None, :]
    known = ~np.isnan(ma) & ~np.isnan(mb)
    day_day = known & (ma == 0) & (mb == 0)
    night_night = known & (ma == 1) & (mb == 1)
    day_night = known & (ma != mb)

    def where(mask: np.ndarray) -> tuple[float, float, float]:
        if not mask.any():
            return 0.0, 0.0, 0.0
        values = sims[mask]
        return float(values.mean()), float(values.max()), 1.0

    dd, dd_best, has_dd = where(day_day)
    nn, nn_best, has_nn = where(night_night)
    dn, dn_best, has_dn = where(day_night)
    ta, tb = a.times[~np.isnan(a.times)], b.times[~np.isnan(b.times)]
    if len(ta) and len(tb):
        gap = float(np.abs(ta[:, None] - tb[None, :]).min()) / 3600.0
    else:
        gap = UNKNOWN_HOURS
    sa, sb = _shares(a.vote), _shares(b.vote)
    ra, rb = a.vote.leader(), b.vote.leader()
    fa, fb = a.night_fraction, b.night_fraction
    size_a, size_b = math.log1p(a.size), math.log1p(b.size)
    return np.array(
        [
            float(a.direction @ b.direction),
            float(flat.mean()),
            float(flat.max()),
            float(np.median(flat)),
            dd,
            nn,
            dn,
            dd_best,
            nn_best,
            dn_best,
            has_dd,
            has_nn,
            has_dn,
            min(fa, fb),
            max(fa, fb),
            math.log1p(gap),
            float(not a.locations.isdisjoint(b.locations)),
            float(sa @ sb),
            min(ra[1], rb[1]),
            max(ra[1], rb[1]),
            float(ra[0] == rb[0] and ra[0] in DEER_CLASSES),
            min(size_a, size_b),
            max(size_a, size_b),
            math.log1p(ranks[0]),
            math.log1p(ranks[1]) if has_dn else 0.0,
        ],
        np.float64,
    )


def feature_matrix(
    pairs: Iterable[tuple[Side, Side]], ranks: Iterable[tuple[int, int]] | None = None
) -> np.ndarray:
    """Return the features of many pairs, one row each (ranks as in :func:`pair_features`)."""
    pairs = list(pairs)
    ranks = list(ranks) if ranks is not None else [(0, 0)] * len(pairs)
    rows = [pair_features(a, b, r) for (a, b), r in zip(pairs, ranks, strict=True)]
    return np.stack(rows) if rows else np.zeros((0, len(FEATURES)))


class Neighbourhood:
    """Best detection-to-detection cosines between every two of a set of sides, kept current.

    Whether two groups are one animal reads differently in a herd of look-alikes than in a
    herd of strangers: the same cosine can be a side's nearest neighbour or its tenth. Ranks
    among the sides in play make the evidence relative to the herd. ``any`` holds the best
    cosine over all detection pairs, ``cross`` over colour-monochrome pairs only (-inf: none).

    Args:
        sides: the sides in play (index = position).
    """

    def __init__(self, sides: Sequence[Side]):
        n = len(sides)
        self.any = np.full((n, n), -np.inf)
        self.cross = np.full((n, n), -np.inf)
        if n < 2:
            return
        owner = np.concatenate([np.full(len(s.vectors), g) for g, s in enumerate(sides)])
        mat = np.concatenate([s.vectors for s in sides]).astype(np.float32)
        mono = np.concatenate([s.monochrome for s in sides])
        starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
        for g, side in enumerate(sides):
            sims = side.vectors.astype(np.float32) @ mat.T
            cross = (side.monochrome[:, None] != mono[None, :]) & ~np.isnan(mono)[None, :]
            cross &= ~np.isnan(side.monochrome)[:, None]
            self.any[g] = np.maximum.reduceat(sims.max(axis=0), starts)
            masked = np.where(cross, sims, -np.inf)
            self.cross[g] = np.maximum.reduceat(masked.max(axis=0), starts)
        np.fill_diagonal(self.any, -np.inf)
        np.fill_diagonal(self.cross, -np.inf)

    def nearest(self, k: int) -> set[tuple[int, int]]:
        """Return pairs (i < j): each side with its ``k`` nearest, overall and across."""
        pairs: set[tuple[int, int]] = set()
        for table in (self.any, self.cross):
            for g, row in enumerate(table):
                for h in np.argsort(-row, kind="stable")[:k].tolist():
                    if np.isfinite(row[h]):
                        pairs.add((min(g, h), max(g, h)))
        return pairs

    def ranks(self, i: int, j: int) -> tuple[int, int]:
        """Return the worse of i's rank for j and j's rank for i, overall and across."""
        out = []
        for table in (self.any, self.cross):
            if not np.isfinite(table[i, j]):
                out.append(0)
                continue
            out.append(int(max((table[i] > table[i, j]).sum(), (table[j] > table[j, i]).sum())))
        return out[0], out[1]

    def join(self, a: int, b: int) -> None:
        """Make ``a`` the union of ``a`` and ``b``; ``b`` leaves play."""
        for table in (self.any, self.cross):
            table[a] = np.maximum(table[a], table[b])
            table[:, a] = np.maximum(table[:, a], table[:, b])
            table[a, a] = -np.inf
            table[b] = -np.inf
            table[:, b] = -np.inf


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


@dataclass(frozen=True)
class PairModel:
    """Standardised logistic regression: P(same animal) = sigmoid(b + w . (x - mean) / scale).

    Attributes:
        weights: (len(FEATURES),) coefficients on standardised features.
        bias: intercept.
        mean: feature means the standardisation subtracts.
        scale: feature scales it divides by (1 where a feature did not vary).
        prior_precision: strength of the Gaussian prior a refit puts on the current weights
            (per coefficient, in standardised units; the sum of log-likelihoods is not averaged,
            so about this many decisions weigh as much as the prior).
        examples: labelled pairs the current weights were fitted on, all refits together.
        fitted: provenance for people to read (worlds, seeds, figures, refits).
    """

    weights: np.ndarray
    bias: float
    mean: np.ndarray
    scale: np.ndarray
    prior_precision: float = 10.0
    examples: int = 0
    fitted: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def fit(
        cls,
        x: np.ndarray,
        y: np.ndarray,
        l2: float = 1.0,
        sample_weight: np.ndarray | None = None,
        prior_precision: float = 10.0,
        fitted: Mapping[str, Any] | None = None,
    ) -> PairModel:
        """Fit from scratch: standardise on ``x``, then an L2-penalised logistic regression.

        Args:
            x: (n, len(FEATURES)) features.
            y: (n,) labels, 1 same animal, 0 not.
            l2: penalty on the standardised weights (not on the intercept).
            sample_weight: (n,) weights of the examples; default 1.
            prior_precision: the refit prior of the resulting model.
            fitted: provenance to keep.
        """
        x = np.asarray(x, np.float64)
        mean = x.mean(axis=0)
        scale = x.std(axis=0)
        scale[scale < 1e-9] = 1.0
        weights, bias = _newton(
            (x - mean) / scale,
            np.asarray(y, np.float64),
            np.zeros(x.shape[1]),
            0.0,
            l2,
            0.0,
            sample_weight,
        )
        return cls(
            weights, bias, mean, scale, prior_precision, examples=len(y),
            fitted=dict(fitted or {}),
        )  # fmt: skip

    def logit(self, x: np.ndarray) -> np.ndarray:
        """Return the log-odds of each row of features."""
        z = (np.atleast_2d(np.asarray(x, np.float64)) - self.mean) / self.scale
        return z @ self.weights + self.bias

    def probability(self, x: np.ndarray) -> np.ndarray:
        """Return P(same animal) for each row of features, shape (n,)."""
        return _sigmoid(self.logit(x))

    def refit(self, x: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None):
        """Return the MAP fit on labelled pairs under a Gaussian prior centred on these weights.

        The standardisation stays (the prior is stated in its units). A few decisions move the
        model a little; many move it as far as the evidence says. Deterministic.

        Args:
            x: (n, len(FEATURES)) features of labelled pairs.
            y: (n,) 1 same animal, 0 not.
            sample_weight: (n,) weights; default 1.

        Returns:
            A new :class:`PairModel`; this one when there are no examples.
        """
        y = np.asarray(y, np.float64)
        if len(y) == 0:
            return self
        z = (np.asarray(x, np.float64) - self.mean) / self.scale
        weights, bias = _newton(
            z, y, self.weights, self.bias, self.prior_precision, self.prior_precision,
            sample_weight,
        )  # fmt: skip
        refits = int(self.fitted.get("refits", 0)) + 1
        return PairModel(
            weights, bias, self.mean, self.scale, self.prior_precision,
            examples=self.examples + len(y), fitted={**self.fitted, "refits": refits},
        )  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        """Return the serialisable form (the calibration's ``pair_model`` field)."""
        return {
            "format": FORMAT,
            "kind": "logistic",
            "features": list(FEATURES),
            "weights": [round(float(v), 6) for v in self.weights],
            "bias": round(float(self.bias), 6),
            "mean": [round(float(v), 6) for v in self.mean],
            "scale": [round(float(v), 6) for v in self.scale],
            "prior_precision": self.prior_precision,
            "examples": self.examples,
            "fitted": dict(self.fitted),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PairModel:
        """Build a model from its serialised form.

        Raises:
            ValueError: unknown format or kind, or features other than ``FEATURES``.
        """
        if data.get("format") != FORMAT or data.get("kind") != "logistic":
            raise ValueError(f"pair model format {data.get('format')!r}/{data.get('kind')!r}")
        if tuple(data.get("features") or ()) != FEATURES:
            raise ValueError("pair model features differ from this version's FEATURES")
        arrays = [np.asarray(data[k], np.float64) for k in ("weights", "mean", "scale")]
        if any(a.shape != (len(FEATURES),) or not np.isfinite(a).all() for a in arrays):
            raise ValueError("pair model weights, mean and scale must be finite, one per feature")
        if np.any(arrays[2] <= 0):
            raise ValueError("pair model scales must be positive")
        return cls(
            arrays[0], float(data["bias"]), arrays[1], arrays[2],
            float(data.get("prior_precision", 10.0)), int(data.get("examples", 0)),
            dict(data.get("fitted") or {}),
        )  # fmt: skip


def _newton(
    z: np.ndarray,
    y: np.ndarray,
    w0: np.ndarray,
    b0: float,
    weight_precision: float,
    bias_precision: float,
    sample_weight: np.ndarray | None,
    steps: int = 50,
) -> tuple[np.ndarray, float]:
    """MAP logistic regression by Newton's method; prior N(w0, 1/precision) per coefficient."""
    n, k = z.shape
    s = np.ones(n) if sample_weight is None else np.asarray(sample_weight, np.float64)
    a = np.hstack([z, np.ones((n, 1))])
    theta = np.append(w0, b0).astype(np.float64)
    centre = theta.copy()
    precision = np.append(np.full(k, weight_precision), max(bias_precision, 1e-6))
    for _ in range(steps):
        p = _sigmoid(a @ theta)
        grad = a.T @ (s * (p - y)) + precision * (theta - centre)
        hess = (a * (s * p * (1 - p))[:, None]).T @ a + np.diag(precision)
        step = np.linalg.solve(hess, grad)
        theta -= step
        if float(np.abs(step).max()) < 1e-10:
            break
    return theta[:k], float(theta[k])


def merge_sides(sides: Sequence[Side]) -> Side:
    """Return one side holding several (a cluster of units), thinned to ``MAX_VECTORS``.

    Args:
        sides: the parts, in a stable order.
    """
    if len(sides) == 1:
        return sides[0]
    vote = SexVote()
    for s in sides:
        vote.add(s.vote.weights)
    vectors = np.concatenate([s.vectors for s in sides])
    keep = _thin(len(vectors))
    return Side(
        vectors=vectors[keep],
        monochrome=np.concatenate([s.monochrome for s in sides])[keep],
        times=np.concatenate([s.times for s in sides])[keep],
        locations=frozenset().union(*(s.locations for s in sides)),
        vote=vote,
        count=sum(s.size for s in sides),
        total=np.sum([s.total if s.total is not None else s.vectors.sum(0) for s in sides], 0),
    )


def features_in_play(sides: Sequence[Side], pairs: Iterable[tuple[int, int]]) -> np.ndarray:
    """Return the features of pairs of sides among all ``sides`` in play, ranks included.

    The ranks (``log_rank_any``, ``log_rank_cross``) are where each side stands among the
    other's nearest of ``sides`` (:class:`Neighbourhood`); use this wherever a set of deer or
    clusters is ranked (review's queue), and :func:`pair_features` alone only for a pair with
    no others in play.

    Args:
        sides: every side in play.
        pairs: index pairs into ``sides``.
    """
    pairs = list(pairs)
    hood = Neighbourhood(sides)
    return feature_matrix(
        [(sides[i], sides[j]) for i, j in pairs], [hood.ranks(i, j) for i, j in pairs]
    )
