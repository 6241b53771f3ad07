"""Thresholds that belong to a re-ID model, stored with it and keyed by its version.

Cosine similarities mean different things in different embedding spaces: a clustering cut or a
review floor tuned on one model silently stops fitting when the model changes. So every such
figure lives with the model that made the vectors, as a :class:`Calibration`:

- ``<weights>.calibration.json`` beside the weights file (written by the workshop's calibration,
  on worlds the model never trained on); it names the model version it was fitted for, and a
  file for other weights is ignored;
- a ``model_calibrations`` row for the version, fitted in this database (``deer-pipeline
  calibrate``, or a person's review decisions); it wins over the file, since it was fitted on
  this herd;
- otherwise :data:`FALLBACK`, with a one-line warning (once per version and process).

Run config still overrides any single figure (the identity asset's ``match_threshold``).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SUFFIX = ".calibration.json"
FORMAT = 1
"""Version of the file layout; bump when a field changes meaning."""

FALLBACK_MATCH_THRESHOLD = 0.62
"""Clustering cut for a model without a calibration: the committed model's first calibration
(docs/identities.md). Another model's similarities may sit anywhere: calibrate it."""

_warned: set[str] = set()


@dataclass(frozen=True)
class Calibration:
    """The figures a re-ID model's similarities are read with.

    Attributes:
        model_version: the embedding model version these figures were fitted for.
        match_threshold: least average-linkage score at which two groups of detections are one
            deer (``MatchConfig.threshold``).
        thresholds: further named cuts (e.g. review floors), each documented by its reader.
        pair_model: parameters of the pair model (same animal or not) that review and
            identities share, as its owner serialises them; None when not fitted.
        source: where these figures came from: a file path, ``database:<how>`` or ``fallback``.
        fitted: how they were fitted (worlds, seeds, figures), for people to read.
    """

    model_version: str
    match_threshold: float
    thresholds: Mapping[str, float] = field(default_factory=dict)
    pair_model: Mapping[str, Any] | None = None
    source: str = "fallback"
    fitted: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_fallback(self) -> bool:
        """Whether no calibration of this model was found."""
        return self.source == "fallback"

    def threshold(self, name: str, default: float) -> float:
        """Return the named cut, or ``default`` when this calibration does not have it."""
        return float(self.thresholds.get(name, default))

    def to_json(self) -> dict[str, Any]:
        """Return the serialisable form (what the file and the table hold)."""
        return {
            "format": FORMAT,
            "model_version": self.model_version,
            "match_threshold": self.match_threshold,
            "thresholds": dict(self.thresholds),
            "pair_model": dict(self.pair_model) if self.pair_model is not None else None,
            "fitted": dict(self.fitted),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: str) -> Calibration:
        """Build a calibration from its serialised form.

        Raises:
            ValueError: a field is missing, of the wrong type, or the format is unknown.
        """
        if data.get("format") != FORMAT:
            raise ValueError(f"calibration format {data.get('format')!r}, expected {FORMAT}")
        threshold = float(data["match_threshold"])
        thresholds = {str(k): float(v) for k, v in (data.get("thresholds") or {}).items()}
        if not all(math.isfinite(v) for v in (threshold, *thresholds.values())):
            raise ValueError("calibration thresholds must be finite numbers")
        pair_model = data.get("pair_model")
        if pair_model is not None and not isinstance(pair_model, Mapping):
            raise ValueError("calibration pair_model must be an object")
        return cls(
            model_version=str(data["model_version"]),
            match_threshold=threshold,
            thresholds=thresholds,
            pair_model=pair_model,
            source=source,
            fitted=dict(data.get("fitted") or {}),
        )


def fallback(model_version: str) -> Calibration:
    """Return the documented fallback for a model without a calibration."""
    return Calibration(model_version=model_version, match_threshold=FALLBACK_MATCH_THRESHOLD)


def calibration_path(weights_file: str | Path) -> Path:
    """Return where the calibration of a weights file lives: ``<weights stem>.calibration.json``."""
    path = Path(weights_file)
    return path.with_name(path.stem + SUFFIX)


def read_file(path: str | Path, model_version: str) -> Calibration | None:
    """Read a calibration file if it exists and was fitted for ``model_version``.

    Raises:
        ValueError: the file exists but is not a valid calibration (a broken file is an error,
            not a silent fallback).
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        calibration = Calibration.from_json(data, source=str(path))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a valid calibration file ({exc})") from exc
    if calibration.model_version != model_version:
        log.warning(
            "%s was fitted for model %s, not %s; ignored",
            path,
            calibration.model_version,
            model_version,
        )
        return None
    return calibration


def write_file(path: str | Path, calibration: Calibration) -> Path:
    """Write a calibration file (sorted keys, so it diffs well in git)."""
    path = Path(path)
    path.write_text(json.dumps(calibration.to_json(), indent=1, sort_keys=True) + "\n")
    return path


_SELECT = "SELECT calibration, source FROM model_calibrations WHERE model_version = %s"
_UPSERT = """
INSERT INTO model_calibrations (model_version, calibration, source, fitted_at)
VALUES (%s, %s::jsonb, %s, now())
ON CONFLICT (model_version) DO UPDATE
   SET calibration = EXCLUDED.calibration, source = EXCLUDED.source, fitted_at = now()
"""


def read_database(cur, model_version: str) -> Calibration | None:
    """Return the calibration fitted in this database for ``model_version``, if any."""
    cur.execute(_SELECT, (model_version,))
    row = cur.fetchone()
    if row is None:
        return None
    data, how = row
    return Calibration.from_json(data, source=f"database:{how}")


def store(cur, calibration: Calibration, how: str) -> None:
    """Store a calibration fitted in this database (the caller commits).

    Args:
        cur: a cursor in the caller's transaction.
        calibration: the figures, for ``calibration.model_version``.
        how: what it was fitted from, e.g. ``review`` or ``labelled:<file>``.
    """
    cur.execute(_UPSERT, (calibration.model_version, json.dumps(calibration.to_json()), how))


def resolve(cur, model_version: str, weights_file: str | Path | None = None) -> Calibration:
    """Return the calibration to use for ``model_version``: database, then file, then fallback.

    Args:
        cur: a cursor on the data database, or None to skip the database.
        model_version: the embedding model version whose similarities will be read.
        weights_file: the weights file of that version when known (its calibration file sits
            beside it); None for versions with no file here (``random``, another machine's).

    Returns:
        The calibration; ``is_fallback`` when none was found, after one warning line per version.
    """
    found = read_database(cur, model_version) if cur is not None else None
    if found is None and weights_file is not None:
        found = read_file(calibration_path(weights_file), model_version)
    if found is not None:
        return found
    if model_version not in _warned:
        _warned.add(model_version)
        log.warning(
            "re-ID model %s has no calibration: using the fallback match threshold %.2f "
            "(run `deer-pipeline calibrate`, see docs/identities.md)",
            model_version,
            FALLBACK_MATCH_THRESHOLD,
        )
    return fallback(model_version)


def with_pair_model(calibration: Calibration, pair_model: Mapping[str, Any]) -> Calibration:
    """Return ``calibration`` with another pair model (e.g. refitted on review decisions)."""
    return replace(calibration, pair_model=dict(pair_model))
