"""Matching tracklets against the gallery of known deer with pgvector's HNSW index.

Each tracklet asks the ``deer.embedding`` HNSW index (cosine) for its nearest deer of a compatible
sex; iterative index scans (``relaxed_order``) keep the sex filter from starving the result. The
best candidate at or above the similarity threshold that is not already in one of the tracklet's
frames gets it, otherwise the tracklet founds a new deer. A deer's gallery vector is the
normalised running mean of all its sightings' embeddings, updated in the database as each
tracklet joins, so later tracklets see it (the system we replace froze it at the first photo).
The caller holds the identity lock and owns the transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deer_pipeline.reid.tracklets import Tracklet
from deer_pipeline.vocabulary import compatible_sexes, deer_sex

DEFAULT_THRESHOLD = 0.8

_SEARCH = """
WITH c AS MATERIALIZED (
    SELECT id, sex, embedding <=> %(q)s::int4[]::vector::halfvec AS distance
      FROM deer
     WHERE sex = ANY(%(sexes)s) AND model_version = %(mv)s AND embedding IS NOT NULL
     ORDER BY embedding <=> %(q)s::int4[]::vector::halfvec
     LIMIT %(k)s)
SELECT id, sex, 1 - distance FROM c ORDER BY distance, id
"""

_SUM = (
    "(SELECT sum(embedding::vector) AS total, count(*) AS n FROM embeddings"
    " WHERE detection_id = ANY(%(members)s) AND model_version = %(mv)s)"
)

_EXTEND = f"""
UPDATE deer d
   SET embedding_sum = d.embedding_sum + a.total,
       embedding_count = d.embedding_count + a.n,
       embedding = l2_normalize(d.embedding_sum + a.total)::halfvec,
       sex = CASE WHEN d.sex = 'unknown' THEN %(sex)s ELSE d.sex END
  FROM {_SUM} a
 WHERE d.id = %(id)s
"""

_FOUND = f"""
INSERT INTO deer (sex, model_version, embedding_sum, embedding_count, embedding)
SELECT %(sex)s, %(mv)s, a.total, a.n, l2_normalize(a.total)::halfvec FROM {_SUM} a
RETURNING id
"""

_FOUND_WITH_ID = f"""
INSERT INTO deer (id, sex, model_version, embedding_sum, embedding_count, embedding)
SELECT %(id)s, %(sex)s, %(mv)s, a.total, a.n, l2_normalize(a.total)::halfvec FROM {_SUM} a
RETURNING id
"""


def query_literal(vector: np.ndarray) -> str:
    """Encode a query vector as an int4[] literal (scaled; cosine ignores scale).

    Integer text is about four times quicker to build in Python than float text, which matters
    when a tracklet is answered in a few milliseconds.
    """
    v = np.asarray(vector, dtype=np.float64)
    peak = float(np.abs(v).max()) or 1.0
    return "{" + ",".join(map(str, np.rint(v * (30000.0 / peak)).astype(np.int64).tolist())) + "}"


@dataclass(frozen=True)
class MatchConfig:
    """How tracklets are matched.

    Attributes:
        threshold: cosine similarity at or above which a tracklet joins a deer.
        ef_search: HNSW candidate list size (``hnsw.ef_search``).
        candidates: nearest deer fetched per tracklet.
    """

    threshold: float = DEFAULT_THRESHOLD
    ef_search: int = 100
    candidates: int = 10


def default_match_config() -> MatchConfig:
    """Return the matching settings for the configured re-ID weights.

    The similarity threshold depends on the model, so the trainer writes the one it chose next to
    the weights (``deer_reid_resnet50.json``, key ``match_threshold``); without such a file the
    built-in ``DEFAULT_THRESHOLD`` applies.
    """
    from deer_pipeline.config import reid_weights

    weights = Path(reid_weights())
    sidecar = weights.with_suffix(".json")
    if weights.is_file() and sidecar.is_file():
        value = json.loads(sidecar.read_text(encoding="utf-8")).get("match_threshold")
        if isinstance(value, int | float) and 0.0 < value < 1.0:
            return MatchConfig(threshold=float(value))
    return MatchConfig()


@dataclass(frozen=True)
class Assignment:
    """Where one tracklet went: ``method`` is ``match`` or ``new``."""

    tracklet: Tracklet
    deer_id: int
    method: str
    similarity: float | None


class Gallery:
    """The ``deer`` table as a gallery for one embedding model, inside one transaction.

    Args:
        cur: a cursor in the caller's transaction (which holds the identity lock).
        model_version: the embedding model of the tracklets; only deer with gallery vectors of
            the same model are candidates.
        config: thresholds and index settings.
        occupied: image id -> deer already seen in that image (e.g. manual sightings).
        reusable: detection id -> id of a deer it founded before that was emptied by this run's
            reset; a tracklet founding a deer again takes the old id back, so re-runs keep ids.
    """

    def __init__(
        self,
        cur,
        model_version: str,
        config: MatchConfig | None = None,
        occupied: Mapping[int, Iterable[int]] | None = None,
        reusable: Mapping[int, int] | None = None,
    ):
        self.cur = cur
        self.model_version = model_version
        self.config = config or MatchConfig()
        self.occupied: dict[int, set[int]] = {k: set(v) for k, v in (occupied or {}).items()}
        self.reusable = dict(reusable or {})
        cur.execute("SET LOCAL hnsw.ef_search = %s", (int(self.config.ef_search),))
        cur.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")

    def search(self, embedding: np.ndarray, sexes: list[str]) -> list[tuple[int, str, float]]:
        """Return up to ``candidates`` (deer id, sex, cosine similarity), most similar first."""
        self.cur.execute(
            _SEARCH,
            {
                "q": query_literal(embedding),
                "sexes": sexes,
                "mv": self.model_version,
                "k": self.config.candidates,
            },
        )
        return [(int(i), s, float(sim)) for i, s, sim in self.cur.fetchall()]

    def assign(self, tracklet: Tracklet) -> Assignment:
        """Match one tracklet to a deer (or found one) and update the gallery.

        Never picks a deer already present in one of the tracklet's frames.
        """
        blocked: set[int] = set()
        for image_id in tracklet.image_ids:
            blocked |= self.occupied.get(image_id, set())
        sex = deer_sex(tracklet.class_name)
        params = {"members": [m.id for m in tracklet.members], "mv": self.model_version, "sex": sex}
        result = None
        for deer_id, _, similarity in self.search(
            tracklet.embedding, compatible_sexes(tracklet.class_name)
        ):
            if similarity < self.config.threshold:
                break
            if deer_id not in blocked:
                self.cur.execute(_EXTEND, {**params, "id": deer_id})
                result = Assignment(tracklet, deer_id, "match", similarity)
                break
        if result is None:
            result = Assignment(tracklet, self._found(tracklet, params), "new", None)
        for image_id in tracklet.image_ids:
            self.occupied.setdefault(image_id, set()).add(result.deer_id)
        return result

    def _found(self, tracklet: Tracklet, params: dict) -> int:
        old = next(
            (self.reusable.pop(m.id) for m in tracklet.members if m.id in self.reusable), None
        )
        if old is None:
            self.cur.execute(_FOUND, params)
        else:
            self.cur.execute(_FOUND_WITH_ID, {**params, "id": old})
        return int(self.cur.fetchone()[0])
