"""Every review decision teaches the pair model of this database, for the model version it concerns.

A person's first decisions are the only evidence about this herd (the right cut differs from herd
to herd), so each answer to a pair (merge: 1, not the same: 0) or a stray box (it belongs: 1,
split it off: 0) is a labelled example, with the pair features as the queue saw them when the
question was asked. The model is refitted from its starting weights (the re-ID model's
calibration: the file beside the weights, or a pair model fitted in this database by other
means) on all of this database's examples at once: a MAP fit whose prior is the starting weights
(``PairModel.refit``), so a few decisions move it gently. Fitting ~20 features on hundreds of
examples takes a millisecond or two, so it happens after every decision, in the app.

The examples of earlier sessions are the decisions the database holds
(``reid.pair_evidence.labelled_pairs``: merges, splits, "not the same"; plus the stray boxes a
person kept); an undo takes its example back out. The refitted model is stored with the re-ID
model's version (``model_calibrations``, how ``review``) with its starting weights, so the next
session and the identities start from what people decided.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deer_pipeline.reid import calibration as calibrations
from deer_pipeline.reid.calibration import Calibration
from deer_pipeline.reid.pair_evidence import detection_sides, labelled_examples
from deer_pipeline.reid.pair_model import FEATURES, PairModel, pair_features
from deer_pipeline.reid.review import kept_sightings

log = logging.getLogger(__name__)

HOW = "review"
"""``model_calibrations.source`` of a pair model refitted on review decisions."""

FALLBACK_SLOPE = 20.0
"""Without a fitted pair model: log-odds per unit of average cosine around the model's match
threshold (P = 0.5 at the threshold, 0.88 at +0.1). Only used until a calibration exists."""

WORDS = (
    (0.9, "very likely the same"),
    (0.7, "likely the same"),
    (0.4, "may be the same"),
    (0.15, "unlikely the same"),
    (0.0, "very unlikely the same"),
)
STRAY_WORDS = (
    (0.9, "very likely another animal"),
    (0.7, "likely another animal"),
    (0.4, "may be another animal"),
    (0.15, "probably this deer"),
    (0.0, "very likely this deer"),
)


def likelihood_words(probability: float, stray: bool = False) -> str:
    """Say a probability in words: "very likely the same" ... "very unlikely the same".

    Args:
        probability: P(same animal) for a pair; P(another animal) for a stray box.
        stray: use the stray-box phrases.
    """
    for floor, words in STRAY_WORDS if stray else WORDS:
        if probability >= floor:
            return words
    return (STRAY_WORDS if stray else WORDS)[-1][1]


def fallback_model(match_threshold: float) -> PairModel:
    """The pair model of a re-ID model without one: the average cosine around its threshold."""
    weights = np.zeros(len(FEATURES))
    weights[FEATURES.index("average_cosine")] = FALLBACK_SLOPE
    return PairModel(
        weights,
        -FALLBACK_SLOPE * match_threshold,
        np.zeros(len(FEATURES)),
        np.ones(len(FEATURES)),
        fitted={"method": "fallback: average cosine around the match threshold"},
    )


def _model(data) -> PairModel | None:
    if not data:
        return None
    try:
        return PairModel.from_json(data)
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("pair model ignored (%s)", exc)
        return None


def _start(cur, model_version: str, weights_file) -> tuple[Calibration, PairModel]:
    """The calibration refits are stored into, and the model they start from."""
    stored = calibrations.read_database(cur, model_version)
    shipped = None
    if weights_file is not None:
        path = calibrations.calibration_path(weights_file)
        shipped = calibrations.read_file(path, model_version)
    calibration = stored or shipped or calibrations.fallback(model_version)
    base = None
    if stored is not None and stored.pair_model:
        fitted = stored.pair_model.get("fitted") or {}
        if stored.source == f"database:{HOW}":  # refitted here before: from this start
            base = _model(fitted.get("review_base"))
        else:  # fitted in this database by other means (a labelled set, the identities)
            base = _model(stored.pair_model)
    if base is None and shipped is not None:
        base = _model(shipped.pair_model)
    if base is None:
        base = fallback_model(calibration.match_threshold)
    return calibration, base


def stored_examples(cur, model_version: str) -> dict[str, tuple[int, list[float]]]:
    """The labelled examples the database holds for a model version (decisions not undone)."""
    x, y, used = labelled_examples(cur, model_version)
    out = {p.source: (int(label), row.tolist()) for p, label, row in zip(used, y, x, strict=True)}
    kept = kept_sightings(cur)
    if kept:
        sides = detection_sides(
            cur, [g for k in kept for g in (k["detections"], k["with"])], model_version
        )
        for n, k in enumerate(kept):
            a, b = sides[2 * n], sides[2 * n + 1]
            if a is not None and b is not None:
                out[f"keep:{k['log']}"] = (1, pair_features(a, b).tolist())
    return out


STRAY_DECISIONS = ("split", "keep")
"""Decisions about a part of a deer against the rest of it (a stray), not about two deer."""

OFFSET_PRECISION = 1.0
"""Prior precision of the strays' log-odds offset (about one decision weighs as much as the
prior that strays are like pairs)."""


def _offset(logit: np.ndarray, y: np.ndarray) -> float:
    """MAP log-odds offset of the strays' answers given the pair model's log-odds (Newton)."""
    o = 0.0
    for _ in range(30):
        p = 0.5 * (1.0 + np.tanh(0.5 * (logit + o)))
        grad = float((p - y).sum()) + OFFSET_PRECISION * o
        hess = float((p * (1 - p)).sum()) + OFFSET_PRECISION
        step = grad / hess
        o -= step
        if abs(step) < 1e-9:
            break
    return o


@dataclass
class Learner:
    """The pair model of one re-ID model version, refitted on this database's decisions.

    Attributes:
        calibration: the calibration the refits are stored into (its other figures unchanged).
        base: the starting model (the prior of every refit).
        examples: decision (``merge:<log id>``, ``not_same:<row>``, ``split:<log id>``,
            ``keep:<log id>``) -> (label, features).
        model: the current model (``base`` refitted on ``examples``).
        stray_offset: log-odds added for strays (a part of a deer against the rest of it), fitted
            on the answers to strays: how often this herd's strays were one animal after all,
            beyond what the pair model says.
    """

    calibration: Calibration
    base: PairModel
    examples: dict[str, tuple[int, list[float]]] = field(default_factory=dict)
    model: PairModel | None = None
    stray_offset: float = 0.0

    def __post_init__(self) -> None:
        if self.model is None:
            self._refit()

    @classmethod
    def load(cls, cur, model_version: str, weights_file: str | Path | None = None) -> Learner:
        """The learner of ``model_version``: its starting weights and this database's decisions.

        Args:
            cur: a cursor on the data database.
            model_version: the embedding model version.
            weights_file: that model's weights file, when it is the configured one (its
                calibration file sits beside it).
        """
        calibration, base = _start(cur, model_version, weights_file)
        return cls(calibration, base, stored_examples(cur, model_version))

    def reload(self, cur) -> None:
        """Read the examples from the database again (after an undo) and refit."""
        self.examples = stored_examples(cur, self.calibration.model_version)
        self._refit()

    def _refit(self) -> None:
        self.stray_offset = 0.0
        if not self.examples:
            self.model = self.base
            return
        keys = sorted(self.examples)
        x = np.array([self.examples[k][1] for k in keys], dtype=np.float64)
        y = np.array([self.examples[k][0] for k in keys], dtype=np.float64)
        self.model = self.base.refit(x, y)
        parts = np.array([k.split(":", 1)[0] in STRAY_DECISIONS for k in keys])
        if parts.any():
            self.stray_offset = _offset(self.model.logit(x[parts]), y[parts])

    def probability(self, features: np.ndarray, stray=None) -> np.ndarray:
        """P(same animal) of each row of features under the current model.

        Args:
            features: (n, len(FEATURES)).
            stray: (n,) bool, rows that are a part of a deer against the rest of it (their
                log-odds get ``stray_offset``); None: none.
        """
        if len(features) == 0:
            return np.zeros(0)
        logit = self.model.logit(features)
        if stray is not None:
            logit = logit + self.stray_offset * np.asarray(stray, dtype=np.float64)
        return 0.5 * (1.0 + np.tanh(0.5 * logit))

    def add(self, key: str, features: Sequence[float], label: int) -> None:
        """Learn one decision (its key, the pair's features, 1 same / 0 not) and refit."""
        self.examples[key] = (int(label), [float(v) for v in features])
        self._refit()

    def store(self, cur) -> None:
        """Store the current model with its starting weights (the caller commits)."""
        data = self.model.to_json()
        data["fitted"] = {
            **data["fitted"],
            "review_base": self.base.to_json(),
            "review_examples": len(self.examples),
            "review_stray_offset": round(self.stray_offset, 6),
        }
        calibrations.store(cur, calibrations.with_pair_model(self.calibration, data), HOW)
