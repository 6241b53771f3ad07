"""Identity settings, and matching one detection against the gallery of known deer (pgvector HNSW).

``MatchConfig`` holds every setting of identity runs (clustering threshold, candidate search, sex
margin, time priors). ``Gallery`` serves the one place that still matches greedily: a person's
class correction re-identifies that single detection at once. It asks the ``deer.embedding``
HNSW index (cosine) for the nearest deer of a compatible sex; iterative index scans
(``relaxed_order``) keep the sex filter from starving the result. The best candidate at or above
the threshold that is not already in the detection's photo gets it, otherwise it founds a deer.
The caller holds the identity lock and owns the transaction; the next run of the location
re-derives the detection with everything else.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from deer_pipeline.reid.calibration import FALLBACK_MATCH_THRESHOLD
from deer_pipeline.reid.tracklets import Tracklet
from deer_pipeline.vocabulary import compatible_sexes, deer_sex

DEFAULT_THRESHOLD = FALLBACK_MATCH_THRESHOLD  # runs read the model's own (reid/calibration.py)

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
    """How tracklets become deer: clustering threshold, candidate search, sex margin and priors.

    Every default is visible here and in the ``deer_identities`` run config; nothing is read from
    the environment. The threshold a run uses is the embedding model's own calibration
    (``reid/calibration.py``) unless the run config sets one; the default here is the fallback.

    Attributes:
        threshold: the least average-linkage score (mean cosine similarity over every pair of
            detections of two clusters, plus priors) at which they are one deer. For a single
            detection matched alone (a class correction), the least cosine to a deer's gallery
            vector.
        ef_search: HNSW candidate list size (``hnsw.ef_search``).
        candidates: nearest neighbours per tracklet, among the location's own tracklets (exact)
            and among stored embeddings of identified detections (the ``embeddings`` HNSW index).
        sex_margin: a sex vote is confident when (winner - runner-up) / all votes reaches this;
            only confident votes forbid a merge. Chosen from measurements (docs/identities.md).
        visit_bonus: prior added to the similarity of two detections at one camera taken at the
            same moment; it decays with the time between them (see ``visit_minutes``).
        visit_minutes: e-folding time of that prior. 30 minutes is the independence interval
            camera-trap studies use for consecutive photos of one species at one camera
            (O'Brien, Kinnaird & Wibisono 2003, Animal Conservation 6:131-139): within it,
            photos are usually the same animals.
        visit_window_minutes: pairs further apart in time than this get no prior.
        pair_join_probability: after the clustering, clusters the pair model
            (``reid/pair_model.py``) calls one animal with at least this probability are joined
            (``reid/pair_join.py``); None: no such pass. Runs read it from the embedding
            model's calibration unless the run config sets it.
        pair_neighbours: nearest clusters per cluster the pair pass scores (overall and across
            day/night), besides those a candidate edge links.
    """

    threshold: float = DEFAULT_THRESHOLD
    ef_search: int = 100
    candidates: int = 10
    sex_margin: float = 0.6
    visit_bonus: float = 0.03
    visit_minutes: float = 30.0
    visit_window_minutes: float = 120.0
    pair_join_probability: float | None = None
    pair_neighbours: int = 5

    def visit_prior(self, minutes: float) -> float:
        """Return the prior for two detections at one camera ``minutes`` apart."""
        minutes = abs(minutes)
        if minutes > self.visit_window_minutes or self.visit_bonus == 0.0:
            return 0.0
        return self.visit_bonus * math.exp(-minutes / self.visit_minutes)


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
