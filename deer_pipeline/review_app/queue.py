"""The review queue: every plausible decision, ranked by how likely the proposed change is right.

No floor hides a pair. Candidate pairs come from all the evidence, across locations and sexes
(``candidates``: the nearest deer by mean direction, and the deer owning the nearest single
sightings of each sighting); each is ranked by the pair model's probability that both deer are
one animal (``reid.pair_model``, the re-ID model's own calibration refitted on this database's
decisions by ``learning.Learner``). A stray (one of the tracklets a deer was built from, or its
box least like the rest) is proposed for splitting off, ranked by the probability that it is
another animal than the rest of its deer; a doubtful class vote is asked as "which class?",
ranked by the probability that the detector's class is wrong. Pairs a person called "not the
same" (``deer_not_same``, by detections) and parts a person kept are never proposed again (a
kept part also vouches for the parts of its deer that are at least as likely to belong).

``ProposalQueue`` keeps all of it between calls: per deer the evidence (``evidence``), the
nearest deer and sightings, and every candidate as a row of ``ranking.Ranking``. A call compares
a digest of the deer table and re-derives only the deer that changed (or a decision touched); a
refit re-scores the stored features in one matrix product. The first ranking can be built in
the background (``ready`` is set once it exists). The page, ``review simulate`` and the load
script all read the queue through ``ProposalQueue.proposals``.
"""

from __future__ import annotations

import heapq
import threading
from dataclasses import dataclass, field

import numpy as np

from deer_pipeline.reid.pair_model import FEATURES, pair_features
from deer_pipeline.reid.review import kept_sightings
from deer_pipeline.review_app.candidates import nearest_other, stray_groups
from deer_pipeline.review_app.evidence import DeerEvidence, has_monochrome, load_evidence
from deer_pipeline.review_app.learning import Learner, likelihood_words
from deer_pipeline.review_app.ranking import Ranking

NEIGHBOURS = 8  # nearest deer (by mean) per deer
SIGHTING_NEIGHBOURS = 3  # nearest sightings of other deer per sighting
SIGHTING_SCAN_LIMIT = 20_000  # above this many sightings, only new ones are scanned (see below)
CLASS_MARGIN = 0.2  # class_scores: best minus second below this is doubtful
LOW_CONFIDENCE = 0.4  # without class_scores: a confidence below this is doubtful
STRAY_MIN_SIGHTINGS = 3  # a deer needs this many sightings for one to stand out
STOP_AFTER = 10  # after this many "no" answers in a row the page suggests stopping

_RANK_COLUMNS = tuple(
    FEATURES.index(name)
    for name in ("best_cosine", "day_night_best", "has_day_night", "log_rank_any", "log_rank_cross")
)

# One row summing every deer's signature: equal to the last one, nothing changed (no need to
# fetch the whole table on every request).
_DEER_DIGEST = """
SELECT count(*), sum(hashtext(concat_ws('/', id, sex, model_version, embedding_count,
                                        n_sightings))::bigint)
  FROM deer WHERE embedding IS NOT NULL
"""

_DEER = """
SELECT id, sex, model_version, embedding_count, n_sightings FROM deer WHERE embedding IS NOT NULL
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


@dataclass(frozen=True)
class Proposal:
    """One proposed decision.

    Attributes:
        kind: ``pair`` (are deer ``left`` and ``right`` one animal?), ``stray`` (are sightings
            ``detections`` of deer ``left`` another animal?) or ``class`` (which class is
            detection ``detection`` of deer ``left``?).
        key: a stable name, e.g. ``pair:12:40``, ``stray:12:5531`` or ``class:5531``.
        score: the probability that the proposed change is right (the ranking, higher first).
        left: a deer id.
        right: the other deer (pairs).
        probability: P(same animal) for a pair; P(another animal) for a stray box.
        similarity: cosine of the two deer's mean directions (pairs), or of the box to the
            rest of its deer (strays).
        detection: the doubtful detection, or the first of the stray sightings.
        detections: the stray sightings (strays).
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
    probability: float | None = None
    similarity: float | None = None
    detection: int | None = None
    class_name: str | None = None
    votes: dict = field(default_factory=dict)
    sexes: tuple[str, ...] = ()
    shared_photos: bool = False
    detections: tuple[int, ...] = ()

    @property
    def cross_sex(self) -> bool:
        """Whether a pair's deer have different known sexes (a merge then needs a class)."""
        known = {s for s in self.sexes if s != "unknown"}
        return len(known) > 1

    @property
    def deer(self) -> tuple[int, ...]:
        """The deer this proposal decides on."""
        return (self.left,) if self.right is None else (self.left, self.right)

    @property
    def words(self) -> str:
        """The likelihood in words ("very likely the same", ...); empty for class questions."""
        if self.probability is None:
            return ""
        return likelihood_words(self.probability, stray=self.kind == "stray")


class _Rows:
    """Vectors with an owner each, in a growable matrix (freed rows have owner -1)."""

    def __init__(self, dtype=np.float32):
        self.dtype = dtype
        self.matrix = np.zeros((0, 0), dtype=dtype)
        self.owner = np.zeros(0, dtype=np.int64)
        self.row: dict[int, int] = {}  # key (deer or detection id) -> row
        self.key: list[int] = []
        self._free: list[int] = []

    def put(self, keys, vectors: np.ndarray, owners) -> np.ndarray:
        """Store (or overwrite) rows; return their indices."""
        out = np.empty(len(keys), dtype=np.int64)
        if len(keys) and self.matrix.shape[1] != vectors.shape[1]:
            self.matrix = np.zeros((0, vectors.shape[1]), dtype=self.dtype)
        fresh = [k for k in keys if k not in self.row]
        need = len(fresh) - len(self._free)
        if need > 0:
            start = len(self.key)
            grow = max(need, len(self.key) // 2, 64)
            self.matrix = np.vstack([self.matrix, np.zeros((grow, vectors.shape[1]), self.dtype)])
            self.owner = np.concatenate([self.owner, np.full(grow, -1, dtype=np.int64)])
            self.key.extend([-1] * grow)
            self._free.extend(range(start + grow - 1, start - 1, -1))
        for k in fresh:
            self.row[k] = self._free.pop()
            self.key[self.row[k]] = k
        for n, k in enumerate(keys):
            out[n] = self.row[k]
        if len(keys):
            self.matrix[out] = vectors
            self.owner[out] = np.asarray(owners, dtype=np.int64)
        return out

    def drop(self, keys) -> None:
        """Free the rows of ``keys``."""
        for k in keys:
            r = self.row.pop(k, None)
            if r is not None:
                self.owner[r] = -1
                self.key[r] = -1
                self._free.append(r)

    def used(self) -> int:
        """Rows in the matrix (used or free)."""
        return len(self.key)


class ProposalQueue:
    """Ranked proposals over the database, refreshed incrementally between calls.

    Args:
        neighbours: nearest deer (by mean direction) looked up per deer.
        sighting_neighbours: nearest sightings of other deer looked up per sighting.
        classes: propose doubtful class votes as well.
        strays: propose stray boxes as well.
        weights: embedding model version -> its weights file (where its calibration sits), or
            a function returning that mapping, called when a pair model is first needed
            (hashing a weights file takes seconds; the first page should not wait for it).
    """

    def __init__(
        self,
        neighbours: int = NEIGHBOURS,
        sighting_neighbours: int = SIGHTING_NEIGHBOURS,
        classes: bool = True,
        strays: bool = True,
        weights=None,
    ):
        self.neighbours = neighbours
        self.sighting_neighbours = sighting_neighbours
        self.classes = classes
        self.strays = strays
        self._weights = weights
        self.lock = threading.RLock()
        self.ready = threading.Event()  # set once the first ranking is built
        self._signature: dict[int, tuple] = {}
        self._evidence: dict[int, DeerEvidence] = {}
        self._means = _Rows(np.float32)
        self._sightings = _Rows(np.float16)
        self._mean_nn: dict[int, list[int]] = {}  # deer -> nearest deer
        self._mean_rev: dict[int, set[int]] = {}  # deer -> deer listing it
        self._det_nn: dict[int, list[int]] = {}  # detection -> nearest detections (other deer)
        self._det_rev: dict[int, set[int]] = {}
        self._rank = Ranking(len(FEATURES))
        self._keys_of: dict[int, set] = {}  # deer -> its candidates' keys in the ranking
        self._pairs: dict[tuple[int, int], tuple[float, bool]] = {}  # -> (cosine, shared photo)
        self._stray: dict[int, list[tuple[tuple, float]]] = {}  # deer -> parts (dets, cosine)
        self._learners: dict[str, Learner] = {}
        self._touched: set[int] = set()
        self._monochrome: bool | None = None
        self._doubts: dict[int, tuple[str, float, dict]] = {}
        self._detections_seen: tuple | None = None
        self._doubt_order: list[int] = []
        self._corrected_key: object = None
        self._doubt_rows = np.zeros(0, dtype=np.int64)
        self._doubt_corrected = np.zeros(0, dtype=bool)
        self._rows_seen = -1
        self._generation = 0  # counts refreshes that changed anything
        self._hidden_key: object = None
        self._digest: tuple | None = None
        self._blocked_keys: list = []
        self.last_total = 0

    # -- the model ------------------------------------------------------------------------
    def learner(self, cur, model_version: str) -> Learner:
        """The pair model (and its examples) of an embedding model version, loaded once."""
        if callable(self._weights):
            self._weights = self._weights()
        if model_version not in self._learners:
            self._learners[model_version] = Learner.load(
                cur, model_version, dict(self._weights or {}).get(model_version)
            )
        return self._learners[model_version]

    def learners(self) -> dict[str, Learner]:
        """The pair models loaded so far, by embedding model version."""
        return dict(self._learners)

    def rescore(self, cur, model_version: str | None = None) -> None:
        """Score the candidates (of one model version) again with the current pair model."""
        versions = [model_version] if model_version else list(self._rank.versions)
        models = {v: self.learner(cur, v) for v in versions if v is not None}
        self._rank.score(models, everything=True)

    def touch(self, deer_ids) -> None:
        """Mark deer a decision changed (their evidence is loaded again at the next call)."""
        self._touched.update(int(d) for d in deer_ids if d is not None)

    # -- keeping up with the database ---------------------------------------------------------
    def refresh(self, cur) -> int:
        """Bring the candidates up to date with the deer table; return deer re-derived."""
        cur.execute(_DEER_DIGEST)
        digest = cur.fetchone()
        if digest == self._digest and not self._touched:
            return 0
        self._digest = digest
        cur.execute(_DEER)
        current = {r[0]: tuple(r[1:]) for r in cur.fetchall()}
        stale = {i for i, sig in current.items() if self._signature.get(i) != sig}
        stale |= self._touched & set(current)
        gone = set(self._signature) - set(current)
        self._touched.clear()
        if not stale and not gone:
            return 0
        if self._monochrome is None:
            self._monochrome = has_monochrome(cur)
        self._signature = current
        changed = stale | gone
        for d in changed:
            old = self._evidence.pop(d, None)
            if old is not None:
                for det in old.detections.tolist():
                    if self._sightings.row.get(det) is not None:
                        self._sightings.owner[self._sightings.row[det]] = -1
            self._stray.pop(d, None)
            for key in self._keys_of.pop(d, set()):
                self._rank.drop(key)
                if key[0] == "pair":
                    self._pairs.pop(key[1:], None)
                    other = key[1] if key[2] == d else key[2]
                    self._keys_of.get(other, set()).discard(key)
        self._means.drop(changed)
        for d in gone:
            for n in self._mean_nn.pop(d, []):
                self._mean_rev.get(n, set()).discard(d)
        fresh = load_evidence(cur, stale, self._monochrome)
        self._evidence.update(fresh)
        ids = sorted(fresh)
        if ids:
            self._means.put(ids, np.stack([fresh[d].mean() for d in ids]), ids)
            for d in ids:
                ev = fresh[d]
                self._sightings.put(ev.detections.tolist(), ev.vectors, np.full(len(ev), d))
        self._nearest_deer(ids)
        self._nearest_sightings(ids)
        self._derive_pairs(cur, ids)
        if self.strays:
            self._derive_strays(ids)
        self._rank.set_ranks(_RANK_COLUMNS)
        versions = set(self._rank.versions) - {None}
        self._rank.score({v: self.learner(cur, v) for v in versions})
        self._hidden_key = None  # hide decided candidates again
        self._generation += 1
        return len(stale)

    def _nearest_deer(self, ids: list[int]) -> None:
        if not ids:
            return
        rows = np.array([self._means.row[d] for d in ids])
        idx, _ = nearest_other(
            self._means.matrix[rows],
            np.array(ids),
            self._means.matrix[: self._means.used()],
            self._means.owner[: self._means.used()],
            self.neighbours,
        )
        for d, found in zip(ids, idx, strict=True):
            for n in self._mean_nn.get(d, []):
                self._mean_rev.get(n, set()).discard(d)
            near = [self._means.key[r] for r in found.tolist() if r >= 0]
            self._mean_nn[d] = near
            for n in near:
                self._mean_rev.setdefault(n, set()).add(d)

    def _nearest_sightings(self, ids: list[int]) -> None:
        """Neighbours of sightings not looked up yet (a detection's neighbours stay valid)."""
        new = [
            det
            for d in ids
            for det in self._evidence[d].detections.tolist()
            if det not in self._det_nn
        ]
        if not new or self.sighting_neighbours <= 0:
            return
        if len(new) > SIGHTING_SCAN_LIMIT:
            # An exact scan of every sighting against every other grows with the square of the
            # database (50,000 sightings: 10^13 multiply-adds, minutes on two cores), so a large
            # database starts from the nearest deer by mean; sightings that arrive later (a
            # decision's, a run's) are scanned against all.
            self._det_nn.update((det, []) for det in new)
            return
        rows = np.array([self._sightings.row[det] for det in new])
        used = self._sightings.used()
        idx, _ = nearest_other(
            self._sightings.matrix[rows],
            self._sightings.owner[rows],
            self._sightings.matrix[:used],
            self._sightings.owner[:used],
            self.sighting_neighbours,
        )
        for det, found in zip(new, idx, strict=True):
            near = [self._sightings.key[r] for r in found.tolist() if r >= 0]
            self._det_nn[det] = near
            for n in near:
                self._det_rev.setdefault(n, set()).add(det)

    def _owner(self, det: int) -> int:
        r = self._sightings.row.get(det)
        return int(self._sightings.owner[r]) if r is not None else -1

    def _partners(self, d: int) -> set[int]:
        out = set(self._mean_nn.get(d, [])) | self._mean_rev.get(d, set())
        for det in self._evidence[d].detections.tolist():
            out.update(self._owner(n) for n in self._det_nn.get(det, []))
            out.update(self._owner(n) for n in self._det_rev.get(det, ()))
        out.discard(d)
        out.discard(-1)
        return out

    def _derive_pairs(self, cur, ids: list[int]) -> None:
        for d in ids:
            for n in self._partners(d):
                pair = (min(d, n), max(d, n))
                if pair in self._pairs or n not in self._evidence:
                    continue
                if self._signature[d][1] != self._signature[n][1]:
                    continue  # different embedding models: not comparable
                a, b = self._evidence[pair[0]], self._evidence[pair[1]]
                key = ("pair", *pair)
                self._rank.put(key, pair_features(a.side(), b.side()), self._signature[d][1], False)
                shared = bool(np.intersect1d(a.images, b.images).size)
                self._pairs[pair] = (float(a.mean() @ b.mean()), shared)
                self._keys_of.setdefault(pair[0], set()).add(key)
                self._keys_of.setdefault(pair[1], set()).add(key)

    def _derive_strays(self, ids: list[int]) -> None:
        for d in ids:
            ev = self._evidence[d]
            parts = []
            for rows in stray_groups(ev.vectors, ev.tracklets, STRAY_MIN_SIGHTINGS):
                rest = np.setdiff1d(np.arange(len(ev)), rows)
                x = pair_features(ev.side(rows), ev.side(rest))
                part = ev.vectors[rows].astype(np.float32).sum(axis=0)
                others = ev.vectors[rest].astype(np.float32).sum(axis=0)
                norms = max(float(np.linalg.norm(part) * np.linalg.norm(others)), 1e-9)
                dets = tuple(int(v) for v in ev.detections[rows])
                key = ("stray", d, len(parts))
                self._rank.put(key, x, self._signature[d][1], True)
                self._keys_of.setdefault(d, set()).add(key)
                parts.append((dets, float(part @ others) / norms))
            if parts:
                self._stray[d] = parts

    # -- examples for the model -------------------------------------------------------------
    def pair_example(self, cur, left: int, right: int) -> tuple[str, np.ndarray] | None:
        """(model version, features) of two deer as the queue sees them now (None: unknown)."""
        self.refresh(cur)
        a, b = self._evidence.get(left), self._evidence.get(right)
        if a is None or b is None or self._signature[left][1] != self._signature[right][1]:
            return None
        x = self._rank.features(("pair", min(left, right), max(left, right)))
        return self._signature[left][1], x if x is not None else pair_features(a.side(), b.side())

    def split_example(self, cur, deer_id: int, detections) -> tuple[str, np.ndarray] | None:
        """(model version, features) of some sightings of a deer against the rest of it."""
        self.refresh(cur)
        ev = self._evidence.get(deer_id)
        if ev is None:
            return None
        moved = np.isin(ev.detections, np.asarray(list(detections), dtype=np.int64))
        if moved.all() or not moved.any():
            return None
        rows, rest = np.flatnonzero(moved), np.flatnonzero(~moved)
        wanted = tuple(int(v) for v in ev.detections[rows])
        for k, (dets, _) in enumerate(self._stray.get(deer_id, [])):
            if dets == wanted:
                return self._signature[deer_id][1], self._rank.features(("stray", deer_id, k))
        return self._signature[deer_id][1], pair_features(ev.side(rows), ev.side(rest))

    # -- the ranked list ------------------------------------------------------------------
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

    def _decided(self, cur, changed: int) -> None:
        """Hide candidates a person decided on (not the same; kept parts) when anything changed."""
        cur.execute("SELECT max(id) FROM review_log")
        key = cur.fetchone()[0]
        if not changed and key == self._hidden_key:
            return
        self._rank.hide(self._blocked_keys, False)
        blocked = self.not_same_pairs(cur)
        kept = {d for k in kept_sightings(cur) for d in k["detections"]}
        keys = [("pair", *p) for p in blocked]
        for d in {self._owner(det) for det in kept}:
            parts = [("stray", d, k) for k in range(len(self._stray.get(d, [])))]
            held = [key for key in parts if set(self._stray[d][key[2]][0]) <= kept]
            if not held:
                continue
            # The person kept the part most in doubt they were asked about: the parts of this
            # deer that the model finds at least as likely to belong are not asked either.
            doubt = min(self._rank.probability(key) for key in held)
            keys += [key for key in parts if self._rank.probability(key) >= doubt or key in held]
        self._rank.hide(keys)
        self._blocked_keys = keys
        self._hidden_key = key

    def proposals(self, cur, skip: set[str] | None = None, limit: int | None = None) -> list:
        """Return the ranked proposals (after a refresh), best first.

        Args:
            cur: a cursor.
            skip: proposal keys to leave out (skipped in this session).
            limit: return at most this many (``last_total`` says how many there are).
        """
        with self.lock:
            changed = self.refresh(cur)
            self.ready.set()
            self._decided(cur, changed)
            skip = skip or set()
            skipped = [self._rank_key(k) for k in skip]
            doubts, n_doubts = self._open_doubts(cur, limit, skip) if self.classes else ([], 0)
            best = self._rank.top(None if limit is None else limit, [k for k in skipped if k])
            self.last_total = self._rank.shown() - len([k for k in skipped if k]) + n_doubts
            entries = [(-score, self._name(key), key, p) for key, score, p in best]
            entries += [(score, name, deer_id, None) for score, name, deer_id in doubts[:limit]]
            top = heapq.nsmallest(limit, entries) if limit is not None else sorted(entries)
            return [self._proposal(e) for e in top]

    def _name(self, key: tuple) -> str:
        if key[0] == "pair":
            return f"pair:{key[1]}:{key[2]}"
        return f"stray:{key[1]}:{self._stray[key[1]][key[2]][0][0]}"

    def _rank_key(self, name: str):
        kind, *rest = name.split(":")
        if kind == "pair":
            return ("pair", int(rest[0]), int(rest[1]))
        if kind == "stray":
            d, first = int(rest[0]), int(rest[1])
            for k, (dets, _) in enumerate(self._stray.get(d, [])):
                if dets[0] == first:
                    return ("stray", d, k)
        return None

    def _proposal(self, entry: tuple) -> Proposal:
        score, name, key, p = entry
        if name.startswith("class:"):
            det = int(name.split(":")[1])
            class_name, wrong, votes = self._doubts[det]
            return Proposal(
                "class", name, wrong, key, detection=det, class_name=class_name, votes=votes
            )
        if key[0] == "stray":
            d = key[1]
            dets, cosine = self._stray[d][key[2]]
            return Proposal(
                "stray",
                name,
                -score,
                d,
                probability=1.0 - p,
                similarity=cosine,
                detection=dets[0],
                detections=dets,
                sexes=(self._signature[d][0],),
            )
        _, left, right = key
        sim, shared = self._pairs[(left, right)]
        return Proposal(
            "pair",
            name,
            -score,
            left,
            right,
            probability=p,
            similarity=sim,
            sexes=(self._signature[left][0], self._signature[right][0]),
            shared_photos=shared,
        )

    def _open_doubts(self, cur, limit: int | None, skip) -> tuple[list, int]:
        """The best ``limit`` doubtful detections not corrected yet and how many are open.

        The doubts are a property of the detections (read once per set of detections, kept
        sorted); whether one is still open (it has a sighting, nobody corrected it) is read from
        the sightings the queue holds and the corrections, read again only after a decision.

        Returns:
            ([(-P wrong, key, deer)], number open).
        """
        cur.execute("SELECT count(*), max(id) FROM detections")
        detections_seen = cur.fetchone()
        cur.execute("SELECT max(id) FROM review_log")
        log_seen = cur.fetchone()[0]
        if detections_seen != self._detections_seen:  # new or re-run detections
            cur.execute(_DOUBTFUL_CLASSES, {"low": LOW_CONFIDENCE, "margin": CLASS_MARGIN})
            self._doubts = {}
            for det, class_name, confidence, votes in cur.fetchall():
                shown = votes or {class_name: round(float(confidence), 3)}
                total = sum(max(float(v), 0.0) for v in shown.values())
                if votes and total > 0:  # P(the detector's class is wrong) by its own scores
                    wrong = 1.0 - max(float(v) for v in votes.values()) / total
                else:
                    wrong = 1.0 - float(confidence)
                ordered = {k: shown[k] for k in sorted(shown, key=lambda c: -float(shown[c]))}
                self._doubts[det] = (class_name, wrong, ordered)
            self._doubt_order = sorted(self._doubts, key=lambda d: (-self._doubts[d][1], d))
            self._doubt_rows = np.zeros(0, dtype=np.int64)
            self._detections_seen = detections_seen
            self._corrected_key = None
        if self._corrected_key != log_seen or len(self._doubt_corrected) != len(self._doubt_order):
            cur.execute("SELECT detection_id FROM detection_corrections")
            corrected = {r[0] for r in cur.fetchall()}
            self._doubt_corrected = np.array([d in corrected for d in self._doubt_order], bool)
            self._corrected_key = log_seen
        if len(self._doubt_rows) != len(self._doubt_order) or self._rows_seen != len(
            self._sightings.row
        ):  # the sightings' rows of the doubtful detections (a row never moves)
            self._doubt_rows = np.array(
                [self._sightings.row.get(d, -1) for d in self._doubt_order], dtype=np.int64
            )
            self._rows_seen = len(self._sightings.row)
        owners = np.where(
            self._doubt_rows >= 0, self._sightings.owner[np.maximum(self._doubt_rows, 0)], -1
        )
        open_idx = np.flatnonzero((owners >= 0) & ~self._doubt_corrected)
        out = []
        for i in open_idx.tolist():
            det = self._doubt_order[i]
            key = f"class:{det}"
            if key not in skip:
                out.append((-self._doubts[det][1], key, int(owners[i])))
                if limit is not None and len(out) >= limit:
                    break
        return out, len(open_idx)
