"""How well identities match the truth: B-cubed precision/recall and the errors biologists fear.

B-cubed scores each detection: precision is the share of its predicted deer's detections that
show the same true individual, recall the share of its true individual's detections that landed
in its predicted deer; both are averaged over detections. A system that lumps everything into one
doe (the one we replace) has recall 1 and terrible precision; one that founds a deer per photo
has precision 1 and terrible recall. Stored detections are matched to ground-truth boxes by IoU
(>= 0.5, greedy by overlap, per image). Same-frame merges (one deer twice in one photo) and
cross-sex merges (a doe and a buck in one deer) are counted on their own, and so are pairs of
identified boxes of one photo at IoU >= 0.7 (one animal boxed twice: a phantom second deer).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from deer_pipeline.reid.tracklets import box_iou

IOU_MATCH = 0.5
OVERLAP_IOU = 0.7  # two boxes of one photo this close are one animal boxed twice


def bcubed(predicted: Sequence[Hashable], truth: Sequence[Hashable]) -> tuple[float, float]:
    """Return B-cubed (precision, recall) of a clustering against the true labels.

    Args:
        predicted: predicted cluster of each item.
        truth: true label of each item (same order).

    Returns:
        (precision, recall); (1.0, 1.0) for no items.
    """
    if len(predicted) != len(truth):
        raise ValueError("predicted and truth differ in length")
    n = len(predicted)
    if n == 0:
        return 1.0, 1.0
    joint = Counter(zip(predicted, truth, strict=True))
    p_size = Counter(predicted)
    t_size = Counter(truth)
    precision = sum(c * c / p_size[p] for (p, _), c in joint.items()) / n
    recall = sum(c * c / t_size[t] for (_, t), c in joint.items()) / n
    return precision, recall


def match_boxes(
    pred: Sequence[Sequence[float]], truth: Sequence[Sequence[float]], min_iou: float = IOU_MATCH
) -> list[tuple[int, int]]:
    """Match predicted to true boxes of one image, greedily by IoU (each used once).

    Returns:
        (pred index, truth index) pairs with IoU >= ``min_iou``.
    """
    pairs = sorted(
        ((box_iou(p, t), i, j) for i, p in enumerate(pred) for j, t in enumerate(truth)),
        reverse=True,
    )
    used_p: set[int] = set()
    used_t: set[int] = set()
    out = []
    for iou, i, j in pairs:
        if iou < min_iou:
            break
        if i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
            out.append((i, j))
    return out


@dataclass(frozen=True)
class Sighting:
    """One identified detection for evaluation."""

    detection_id: int
    image: str  # the image's path relative to the image root
    box: tuple[float, float, float, float]
    deer_id: int


@dataclass(frozen=True)
class IdentityMetrics:
    """Quality of identities against ground truth."""

    bcubed_precision: float
    bcubed_recall: float
    bcubed_f1: float
    deer_found: int
    deer_true: int
    sightings: int
    sightings_matched: int
    truth_boxes: int
    same_frame_merges: int
    cross_sex_merges: int
    cross_class_merges: int
    overlapping_pairs: int = 0  # identified boxes of one photo at IoU >= OVERLAP_IOU

    def as_dict(self) -> dict:
        """Return the metrics as a plain dict (rounded floats)."""
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def evaluate(sightings: Iterable[Sighting], truth: Mapping[str, list[dict]]) -> IdentityMetrics:
    """Score identities against ground truth.

    Args:
        sightings: identified detections (of the evaluated images).
        truth: image path -> ground-truth boxes (``bbox``, ``class``, ``individual_id``) for
            every evaluated image; images absent here are ignored.

    Returns:
        The metrics; B-cubed counts only sightings matched to a true box.
    """
    by_image: dict[str, list[Sighting]] = defaultdict(list)
    for s in sightings:
        if s.image in truth:
            by_image[s.image].append(s)
    pred, true, true_class = [], [], {}
    same_frame = overlapping = 0
    for image, items in by_image.items():
        same_frame += sum(c - 1 for c in Counter(s.deer_id for s in items).values() if c > 1)
        overlapping += sum(
            box_iou(a.box, b.box) >= OVERLAP_IOU
            for k, a in enumerate(items)
            for b in items[k + 1 :]
        )
        boxes = truth[image]
        for i, j in match_boxes([s.box for s in items], [b["bbox"] for b in boxes]):
            pred.append(items[i].deer_id)
            true.append(boxes[j]["individual_id"])
            true_class[boxes[j]["individual_id"]] = boxes[j]["class"]
    precision, recall = bcubed(pred, true)
    classes: dict[int, set[str]] = defaultdict(set)
    for p, t in zip(pred, true, strict=True):
        classes[p].add(true_class[t])
    individuals = {b["individual_id"] for boxes in truth.values() for b in boxes}
    return IdentityMetrics(
        bcubed_precision=precision,
        bcubed_recall=recall,
        bcubed_f1=2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        deer_found=len({s.deer_id for items in by_image.values() for s in items}),
        deer_true=len(individuals),
        sightings=sum(len(v) for v in by_image.values()),
        sightings_matched=len(pred),
        truth_boxes=sum(len(v) for v in truth.values()),
        same_frame_merges=same_frame,
        cross_sex_merges=sum(1 for c in classes.values() if {"doe", "buck"} <= c),
        cross_class_merges=sum(1 for c in classes.values() if len(c) > 1),
        overlapping_pairs=overlapping,
    )


def load_truth(path: str | Path) -> dict[str, list[dict]]:
    """Read ``ground_truth.json``: image path (relative to the image root) -> its boxes."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return {entry["file"]: entry["boxes"] for entry in data["images"]}


def load_sightings(cur, location_keys: Sequence[str] | None = None) -> list[Sighting]:
    """Read the identified detections (optionally of some locations) from the database."""
    cur.execute(
        "SELECT s.detection_id, i.rel_path, d.x1, d.y1, d.x2, d.y2, s.deer_id FROM sightings s"
        " JOIN detections d ON d.id = s.detection_id JOIN images i ON i.id = d.image_id"
        " WHERE %(all)s OR i.location_key = ANY(%(keys)s)",
        {"all": location_keys is None, "keys": list(location_keys or [])},
    )
    return [Sighting(r[0], r[1], (r[2], r[3], r[4], r[5]), r[6]) for r in cur.fetchall()]


def evaluate_database(
    cur, truth_path: str | Path, location_keys: Sequence[str] | None = None
) -> IdentityMetrics:
    """Score the stored identities of some locations against a ground-truth file.

    Only images of those locations (as stored in ``images``) are evaluated, so deer counts and
    B-cubed refer to what was processed.
    """
    truth = load_truth(truth_path)
    cur.execute(
        "SELECT rel_path FROM images WHERE status = 'ok'"
        " AND (%(all)s OR location_key = ANY(%(keys)s))",
        {"all": location_keys is None, "keys": list(location_keys or [])},
    )
    seen = {r[0] for r in cur.fetchall()}
    return evaluate(
        load_sightings(cur, location_keys), {k: v for k, v in truth.items() if k in seen}
    )
