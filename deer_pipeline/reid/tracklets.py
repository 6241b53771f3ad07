"""Tracklets: the detections of one animal within one burst, linked frame to frame.

A trail camera fires 3-10 frames a second or two apart, so the same animal appears in several
frames at nearly the same place. Linking those first (by box overlap, motion and appearance) gives
each animal one averaged embedding per burst, which is far steadier than single frames, and it
settles within-burst identity without the gallery. Hard rules: two detections of one frame never
share a tracklet, and boxes whose sex votes are confident and differ (``doe``, ``buck``, ``fawn``
are mutually exclusive, see ``reid.sex``) never link; one box's uncertain class does not stop a
link.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from deer_pipeline.reid.assignment import linear_assignment
from deer_pipeline.reid.sex import SexVote, box_votes, conflict, vote_of
from deer_pipeline.vocabulary import DEER_CLASSES


@dataclass(frozen=True)
class Detection:
    """One detection as re-identification sees it.

    Attributes:
        id: ``detections.id``.
        image_id: the image it was found in.
        burst: the burst key (``images.burst_id``, or the image id for a lone frame).
        frame: position of the image within its burst (0, 1, ...).
        captured_at: camera time of the image.
        class_name: class after human corrections.
        box: (x1, y1, x2, y2) in pixels.
        embedding: L2-normalised re-ID vector.
        confidence: detector confidence.
        class_scores: the box's score for every deer class, when the detector stored them.
        corrected: whether ``class_name`` is a person's correction.
        monochrome: whether its frame was infrared/monochrome (None: not measured).
    """

    id: int
    image_id: int
    burst: int
    frame: int
    captured_at: datetime | None
    class_name: str
    box: tuple[float, float, float, float]
    embedding: np.ndarray
    confidence: float = 1.0
    class_scores: Mapping[str, float] | None = None
    corrected: bool = False
    monochrome: bool | None = None

    @property
    def votes(self) -> dict[str, float]:
        """This box's sex vote (see ``reid.sex.box_votes``)."""
        return box_votes(
            self.class_name,
            self.confidence,
            self.class_scores,
            self.class_name if self.corrected else None,
        )


@dataclass
class Tracklet:
    """Detections of one animal in one burst, at most one per frame, in frame order."""

    members: list[Detection]
    embedding: np.ndarray = field(repr=False)

    @property
    def key(self) -> str:
        """A stable key: burst and first detection id (detection ids survive re-runs)."""
        return f"{self.members[0].burst}:{self.members[0].id}"

    @property
    def class_name(self) -> str:
        """The members' deer class (unknown classes yield to a known one)."""
        known = [m.class_name for m in self.members if m.class_name in DEER_CLASSES]
        return known[0] if known else self.members[0].class_name

    @property
    def vote(self) -> SexVote:
        """The summed sex vote of the members."""
        return vote_of(m.votes for m in self.members)

    @property
    def image_ids(self) -> set[int]:
        """The images (frames) this tracklet occupies."""
        return {m.image_id for m in self.members}

    @property
    def start(self) -> datetime | None:
        """Camera time of the first member."""
        return self.members[0].captured_at


@dataclass(frozen=True)
class LinkConfig:
    """How detections are linked across frames.

    Attributes:
        max_gap: frames a track may miss and still continue (1 = skip one frame).
        max_distance: gate on the centre distance from the predicted position, in units of the
            track's box diagonal.
        max_area_ratio: gate on the ratio of box areas.
        min_similarity: gate on embedding cosine similarity (None: no appearance gate).
        distance_weight: cost weight of the normalised centre distance.
        appearance_weight: cost weight of (1 - cosine similarity).
        sex_margin: a track and a box whose sex votes are both confident at this margin and
            differ never link.
    """

    max_gap: int = 1
    max_distance: float = 0.8
    max_area_ratio: float = 3.0
    min_similarity: float | None = None
    distance_weight: float = 1.0
    appearance_weight: float = 1.0
    sex_margin: float = 0.5


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Return the intersection over union of two (x1, y1, x2, y2) boxes."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _normalise(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


class _Track:
    """A tracklet being built: last box, velocity (pixels per frame) and appearance."""

    def __init__(self, det: Detection):
        self.members = [det]
        self.velocity = np.zeros(2)
        self.sum = np.asarray(det.embedding, dtype=np.float64).copy()
        self.vote = SexVote().add(det.votes)

    @property
    def last(self) -> Detection:
        return self.members[-1]

    def predicted_box(self, frame: int) -> tuple[float, float, float, float]:
        dx, dy = self.velocity * (frame - self.last.frame)
        x1, y1, x2, y2 = self.last.box
        return (x1 + dx, y1 + dy, x2 + dx, y2 + dy)

    def add(self, det: Detection) -> None:
        gap = det.frame - self.last.frame
        step = (_centre(det.box) - _centre(self.last.box)) / gap
        self.velocity = step if len(self.members) == 1 else 0.5 * self.velocity + 0.5 * step
        self.members.append(det)
        self.sum += det.embedding
        self.vote.add(det.votes)


def _centre(box: Sequence[float]) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0])


def _area(box: Sequence[float]) -> float:
    return max(box[2] - box[0], 1e-6) * max(box[3] - box[1], 1e-6)


def link_cost(track: _Track, det: Detection, config: LinkConfig) -> float:
    """Cost of continuing ``track`` with ``det`` (inf when a gate forbids it)."""
    if conflict(track.vote, SexVote().add(det.votes), config.sex_margin):
        return np.inf
    pred = track.predicted_box(det.frame)
    ratio = _area(pred) / _area(det.box)
    if max(ratio, 1.0 / ratio) > config.max_area_ratio:
        return np.inf
    diag = float(np.hypot(pred[2] - pred[0], pred[3] - pred[1])) or 1.0
    dist = float(np.linalg.norm(_centre(pred) - _centre(det.box))) / diag
    if dist > config.max_distance:
        return np.inf
    similarity = float(np.dot(_normalise(track.sum), det.embedding))
    if config.min_similarity is not None and similarity < config.min_similarity:
        return np.inf
    return (
        (1.0 - box_iou(pred, det.box))
        + config.distance_weight * dist
        + config.appearance_weight * (1.0 - similarity)
    )


def _burst_tracklets(dets: list[Detection], config: LinkConfig) -> list[Tracklet]:
    frames: dict[int, list[Detection]] = {}
    for det in dets:
        frames.setdefault(det.frame, []).append(det)
    open_tracks: list[_Track] = []
    done: list[_Track] = []
    for frame in sorted(frames):
        current = frames[frame]
        still = []
        for track in open_tracks:
            (still if frame - track.last.frame <= config.max_gap + 1 else done).append(track)
        open_tracks = still
        cost = np.array([[link_cost(t, d, config) for d in current] for t in open_tracks])
        linked = set()
        for ti, di in linear_assignment(cost.reshape(len(open_tracks), len(current))):
            open_tracks[ti].add(current[di])
            linked.add(di)
        open_tracks += [_Track(d) for i, d in enumerate(current) if i not in linked]
    done += open_tracks
    return [
        Tracklet(members=t.members, embedding=_normalise(t.sum).astype(np.float32)) for t in done
    ]


def build_tracklets(
    detections: Iterable[Detection], config: LinkConfig | None = None
) -> list[Tracklet]:
    """Link detections into tracklets, burst by burst.

    Within a burst, frames are taken in order; each frame's detections are assigned to the open
    tracks by minimum total cost (Hungarian method) over box overlap with the track's predicted
    box (constant velocity), normalised centre distance and appearance, after hard gates (class,
    distance, size). Unassigned detections open new tracks.

    Args:
        detections: detections of any number of bursts.
        config: link settings (defaults: ``LinkConfig()``).

    Returns:
        Tracklets ordered by start time, then burst, then first detection id; each has the
        normalised mean embedding of its members.
    """
    config = config or LinkConfig()
    bursts: dict[int, list[Detection]] = {}
    for det in detections:
        bursts.setdefault(det.burst, []).append(det)
    out: list[Tracklet] = []
    for burst in bursts.values():
        burst.sort(key=lambda d: (d.frame, d.id))
        out += _burst_tracklets(burst, config)
    return sorted(out, key=lambda t: (t.start or datetime.min, t.members[0].burst, t.members[0].id))
