"""The review queue: proposed decisions, ranked by how much each is likely to fix.

Automatic identities err mostly one way: one animal split over several deer. So most proposals
are pairs of deer whose gallery vectors are nearest (the ``deer`` HNSW index, one query per deer
that changed), not already decided "not the same" (``deer_not_same`` names detections, so the
decision follows the sightings whatever deer ids a later run gives them). The more similar, the
likelier a merge, so pairs rank by similarity. Deer of different sex are proposed a little lower
(the detector's class is often wrong; the person then says which class the animal is), and deer
boxed in one photo together too (the detector boxes one animal twice; a merge keeps the best box
of each such photo). A deer seen once is the likeliest fragment and is proposed down to a lower
similarity. Doubtful class votes (a detection whose best two class scores are close, or,
without ``class_scores``, a low confidence) are proposed as "which class is this?".
``ProposalQueue`` keeps the neighbour pairs between calls and refreshes only deer whose gallery
changed, so the next proposal is cheap after a decision. The page, ``review simulate`` and the
load script all read the queue through ``ProposalQueue.proposals``.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from deer_pipeline.db.indexes import halfvec_cast

PAIR_FLOOR = 0.7  # pairs scoring at least this are proposed (tuned on worlds 11 and 21)
SINGLE_FLOOR = 0.68  # ... or this when one of them has a single sighting
NEIGHBOURS = 8  # nearest deer asked of the index per deer
CROSS_SEX_PENALTY = 0.1  # deer of different sex are less likely one animal
CLASS_MARGIN = 0.2  # class_scores: best minus second below this is doubtful
LOW_CONFIDENCE = 0.4  # without class_scores: a confidence below this is doubtful

_DEER = """
SELECT id, sex, model_version, embedding_count, n_sightings, vector_dims(embedding) FROM deer
 WHERE embedding IS NOT NULL
"""

# Nearest deer of each deer in %(ids)s (all of model version %(mv)s), through that version's HNSW
# index: its version filter and cast (db/indexes.py). Relaxed order: re-sorted in Python.
# Any sex: the detector's class is often wrong, so two deer of different sex may be one animal
# (the person then says which class it is).
_NEIGHBOURS = """
SELECT q.id, n.id, 1 - n.distance
  FROM deer q CROSS JOIN LATERAL (
       SELECT d.id, d.embedding::{cast} <=> q.embedding::{cast} AS distance FROM deer d
        WHERE d.id <> q.id AND d.model_version = %(mv)s AND d.embedding IS NOT NULL
        ORDER BY d.embedding::{cast} <=> q.embedding::{cast} LIMIT %(k)s) n
 WHERE q.id = ANY(%(ids)s) AND q.model_version = %(mv)s
"""

_SIMILARITY = """
SELECT p.a, p.b, 1 - (a.embedding <=> b.embedding)
  FROM unnest(%(a)s::bigint[], %(b)s::bigint[]) AS p(a, b)
  JOIN deer a ON a.id = p.a JOIN deer b ON b.id = p.b
 WHERE a.model_version = b.model_version
"""

_SHARED_PHOTO = """
SELECT p.a, p.b FROM unnest(%(a)s::bigint[], %(b)s::bigint[]) AS p(a, b)
 WHERE EXISTS (SELECT 1 FROM sightings sa JOIN detections da ON da.id = sa.detection_id
                 JOIN detections db ON db.image_id = da.image_id
                 JOIN sightings sb ON sb.detection_id = db.id AND sb.deer_id = p.b
                WHERE sa.deer_id = p.a)
"""

_NOT_SAME = """
SELECT n.id, false, s.deer_id FROM deer_not_same n
  CROSS JOIN LATERAL unnest(n.left_detections) AS x(detection_id)
  JOIN sightings s ON s.detection_id = x.detection_id
UNION
SELECT n.id, true, s.deer_id FROM deer_not_same n
  CROSS JOIN LATERAL unnest(n.right_detections) AS x(detection_id)
  JOIN sightings s ON s.detection_id = x.detection_id
"""

# Detections whose class vote is doubtful (a property of the detection: computed once per set of
# detections, then filtered by corrections and current sightings at each call).
_DOUBTFUL_CLASSES = """
SELECT d.id, d.class_name, d.confidence, d.class_scores FROM detections d
 WHERE (d.class_scores IS NULL AND d.confidence < %(low)s)
    OR (jsonb_typeof(d.class_scores) = 'object' AND
        (SELECT max(v::float) - COALESCE((SELECT v2::float FROM jsonb_each_text(d.class_scores)
                                          AS e2(k2, v2) ORDER BY v2::float DESC
                                          OFFSET 1 LIMIT 1), 0)
           FROM jsonb_each_text(d.class_scores) AS e(k, v)) < %(margin)s)
"""

_OPEN_DOUBTS = """
SELECT x.id, s.deer_id FROM unnest(%s::bigint[]) AS x(id)
  JOIN sightings s ON s.detection_id = x.id
 WHERE NOT EXISTS (SELECT 1 FROM detection_corrections c WHERE c.detection_id = x.id)
"""


@dataclass(frozen=True)
class Proposal:
    """One proposed decision.

    Attributes:
        kind: ``pair`` (are deer ``left`` and ``right`` one animal?) or ``class`` (which class
            is detection ``detection`` of deer ``left``?).
        key: a stable name, e.g. ``pair:12:40`` or ``class:5531``.
        score: the ranking (higher first).
        left: a deer id.
        right: the other deer (pairs).
        similarity: cosine similarity of the two gallery vectors (pairs).
        detection: the doubtful detection (class proposals).
        class_name: the detector's class (class proposals).
        votes: class -> score, or the detector's confidence in its one class.
        sexes: the sexes of the pair's deer (different ones: a merge says which class it is).
        shared_photos: the two deer have boxes in one photo (one animal boxed twice, if the
            person says they are the same: a merge keeps the best box of each such photo).
    """

    kind: str
    key: str
    score: float
    left: int
    right: int | None = None
    similarity: float | None = None
    detection: int | None = None
    class_name: str | None = None
    votes: dict = field(default_factory=dict)
    sexes: tuple[str, ...] = ()
    shared_photos: bool = False

    @property
    def cross_sex(self) -> bool:
        """Whether a pair's deer have different known sexes (a merge then needs a class)."""
        known = {s for s in self.sexes if s != "unknown"}
        return len(known) > 1

    @property
    def deer(self) -> tuple[int, ...]:
        """The deer this proposal decides on."""
        return (self.left,) if self.right is None else (self.left, self.right)


def class_margin(votes: dict | None) -> float | None:
    """Best minus second-best class score (None without scores)."""
    if not votes:
        return None
    ranked = sorted((float(v) for v in votes.values()), reverse=True) + [0.0]
    return ranked[0] - ranked[1]


class ProposalQueue:
    """Ranked proposals over the database, refreshed incrementally between calls.

    Args:
        pair_floor: lowest score of a proposed pair (similarity, less the cross-sex penalty).
        single_floor: lowest score when one deer of the pair has one sighting.
        neighbours: nearest deer looked up per deer.
        ef_search: HNSW candidate list size for those look-ups.
        classes: propose doubtful class votes as well.
    """

    def __init__(
        self,
        pair_floor: float = PAIR_FLOOR,
        single_floor: float = SINGLE_FLOOR,
        neighbours: int = NEIGHBOURS,
        ef_search: int = 100,
        classes: bool = True,
    ):
        self.pair_floor = pair_floor
        self.single_floor = single_floor
        self.neighbours = neighbours
        self.ef_search = ef_search
        self.classes = classes
        self._signature: dict[int, tuple] = {}
        self._pairs: dict[tuple[int, int], float] = {}
        self._shared_photo: set[tuple[int, int]] = set()
        self._doubts: dict[int, tuple[str, float, dict]] = {}
        self._detections_seen: tuple | None = None
        self._open: list | None = None
        self._open_key: tuple | None = None
        self.last_total = 0

    def refresh(self, cur) -> int:
        """Bring the neighbour pairs up to date with the deer table; return deer re-queried."""
        cur.execute(_DEER)
        current = {r[0]: tuple(r[1:]) for r in cur.fetchall()}
        stale = sorted(i for i, sig in current.items() if self._signature.get(i) != sig)
        touched = set(stale) | (set(self._signature) - set(current))
        self._signature = current
        if not touched:
            return 0
        partners = [p for p in self._pairs if p[0] in touched or p[1] in touched]
        for pair in partners:
            self._pairs.pop(pair, None)
            self._shared_photo.discard(pair)
        fresh: dict[tuple[int, int], float] = {}
        keep = [p for p in partners if p[0] in current and p[1] in current]
        if keep:
            cur.execute(_SIMILARITY, {"a": [p[0] for p in keep], "b": [p[1] for p in keep]})
            fresh.update({(a, b): float(s) for a, b, s in cur.fetchall()})
        cur.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(self.ef_search),))
        cur.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)")
        by_version: dict[tuple[str, int], list[int]] = {}
        for i in stale:  # the signature is (sex, model_version, count, sightings, size)
            by_version.setdefault((current[i][1], current[i][4]), []).append(i)
        for (version, dim), ids in sorted(by_version.items()):
            query = _NEIGHBOURS.format(cast=halfvec_cast(dim))
            for start in range(0, len(ids), 1000):
                params = {"ids": ids[start : start + 1000], "k": self.neighbours, "mv": version}
                cur.execute(query, params)
                for q, n, s in cur.fetchall():
                    fresh[(min(q, n), max(q, n))] = float(s)
        fresh = {p: s for p, s in fresh.items() if s >= min(self.pair_floor, self.single_floor)}
        if fresh:
            pairs = list(fresh)
            cur.execute(_SHARED_PHOTO, {"a": [p[0] for p in pairs], "b": [p[1] for p in pairs]})
            self._shared_photo.update((a, b) for a, b in cur.fetchall())
        self._pairs.update(fresh)
        return len(stale)

    def not_same_pairs(self, cur) -> set[tuple[int, int]]:
        """Pairs of current deer that a person said are not the same animal."""
        cur.execute(_NOT_SAME)
        sides: dict[int, tuple[set[int], set[int]]] = {}
        for row, right, deer_id in cur.fetchall():
            sides.setdefault(row, (set(), set()))[int(right)].add(deer_id)
        return {
            (min(a, b), max(a, b))
            for left, right in sides.values()
            for a in left
            for b in right
            if a != b
        }

    def proposals(self, cur, skip: set[str] | None = None, limit: int | None = None) -> list:
        """Return the ranked proposals (after a refresh), best first.

        Args:
            cur: a cursor.
            skip: proposal keys to leave out (skipped in this session).
            limit: return at most this many (``last_total`` says how many there are).
        """
        changed = self.refresh(cur)
        skip = skip or set()
        blocked = self.not_same_pairs(cur)
        entries: list[tuple] = []
        for (a, b), sim in self._pairs.items():
            if (a, b) in blocked:
                continue
            sig_a, sig_b = self._signature[a], self._signature[b]
            sexes = (sig_a[0], sig_b[0])
            cross = "unknown" not in sexes and sexes[0] != sexes[1]
            score = sim - (CROSS_SEX_PENALTY if cross else 0.0)
            floor = self.single_floor if min(sig_a[3], sig_b[3]) <= 1 else self.pair_floor
            if score >= floor:
                entries.append((-score, f"pair:{a}:{b}", a, b, sim, sexes))
        if self.classes:
            for det, deer_id in self._open_doubts(cur, changed):
                entries.append((-self._doubts[det][1], f"class:{det}", deer_id, None, None, det))
        if skip:
            entries = [e for e in entries if e[1] not in skip]
        self.last_total = len(entries)
        top = heapq.nsmallest(limit, entries) if limit is not None else sorted(entries)
        return [self._proposal(e) for e in top]

    def _proposal(self, entry: tuple) -> Proposal:
        score, key, left, right, sim, extra = entry
        if right is None:
            class_name, _, votes = self._doubts[extra]
            return Proposal(
                "class", key, -score, left, detection=extra, class_name=class_name, votes=votes
            )
        return Proposal(
            "pair",
            key,
            -score,
            left,
            right,
            similarity=sim,
            sexes=extra,
            shared_photos=(left, right) in self._shared_photo,
        )

    def _open_doubts(self, cur, changed: int) -> list[tuple[int, int]]:
        """(detection, deer) of doubtful detections not corrected yet, cached between decisions."""
        cur.execute("SELECT count(*), max(id) FROM detections")
        detections_seen = cur.fetchone()
        cur.execute("SELECT max(id) FROM review_log")
        log_seen = cur.fetchone()[0]
        if detections_seen != self._detections_seen:  # new or re-run detections
            cur.execute(_DOUBTFUL_CLASSES, {"low": LOW_CONFIDENCE, "margin": CLASS_MARGIN})
            self._doubts = {}
            for det, class_name, confidence, votes in cur.fetchall():
                margin = class_margin(votes)
                doubt = 1.0 - (margin if margin is not None else float(confidence))
                shown = votes or {class_name: round(float(confidence), 3)}
                ordered = {k: shown[k] for k in sorted(shown, key=lambda c: -float(shown[c]))}
                # between the surest pairs and the rest: a wrong sex blocks merges
                self._doubts[det] = (class_name, 0.5 + 0.4 * doubt, ordered)
            self._detections_seen = detections_seen
            self._open = None
        key = (log_seen, detections_seen)
        if changed or self._open is None or self._open_key != key:
            if self._doubts:
                cur.execute(_OPEN_DOUBTS, (sorted(self._doubts),))
                self._open = cur.fetchall()
            else:
                self._open = []
            self._open_key = key
        return self._open
