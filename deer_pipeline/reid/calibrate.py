"""Fitting a re-ID model's match threshold from labelled pairs of its own vectors.

A model without a calibration runs on the documented fallback
(``calibration.FALLBACK_MATCH_THRESHOLD``, with a warning). This fits its own, for one model
version, from one of two kinds of labels:

- **a person's decisions** in this database: the ``manual`` sightings of a deer (a merge, a
  split, an assignment) are one animal, so every two of them are a same pair; ``deer_not_same``
  names detections that are different animals, left against right;
- **a labelled set**, such as a synthetic world's ``ground_truth.json``: the version's detections
  matched to the true boxes (IoU, ``reid.metrics.match_boxes``) take their individual's name;
  every two of one individual are a same pair, of two individuals a different pair.

The identities' clustering merges two groups when their average linkage, the mean cosine over
every pair of their detections, reaches the threshold; for the same animal that mean estimates
the mean of the same pairs' cosines, for two animals that of the different pairs'. So the
threshold is the cut that best separates the labelled pairs' cosines: the one with the largest
true-positive rate minus false-positive rate (Youden's J), which does not depend on how many more
different pairs than same pairs a herd gives. Detections in one photo are never a same pair.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deer_pipeline.reid.metrics import load_truth, match_boxes
from deer_pipeline.reid.vectors import normalise_rows, read_id_halfvecs

MIN_PAIRS = 10
"""Fewest same pairs and fewest different pairs a fit needs."""
MAX_DETECTIONS = 4000
"""More labelled detections than this are sampled (seeded) to bound the pair matrix."""
GRID = np.round(np.arange(-1.0, 1.0001, 0.005), 3)


class CalibrationDataError(ValueError):
    """Too few labelled pairs of the model version to fit a threshold."""


@dataclass(frozen=True)
class Labels:
    """Labelled detections of one model version.

    Attributes:
        group: detection id -> who it is (an individual's name, or a deer id).
        images: detection id -> image id (two detections of one photo are never one animal).
        different: extra different pairs (detection ids) beyond different groups, e.g. a
            person's "not the same" decisions; None means every two groups differ.
        source: what the labels came from, for the record.
    """

    group: dict[int, object]
    images: dict[int, int]
    different: set[tuple[int, int]] | None
    source: str


@dataclass(frozen=True)
class Fit:
    """A fitted threshold and the evidence behind it."""

    threshold: float
    same_pairs: int
    different_pairs: int
    true_positive_rate: float
    false_positive_rate: float
    same_median: float
    different_median: float


_VERSION_DETECTIONS = """
SELECT d.id, d.image_id, i.rel_path, d.x1, d.y1, d.x2, d.y2 FROM effective_detections d
  JOIN images i ON i.id = d.image_id
  JOIN embeddings e ON e.detection_id = d.id AND e.model_version = %s
"""

_MANUAL = """
SELECT s.detection_id, s.deer_id, d.image_id FROM sightings s
  JOIN detections d ON d.id = s.detection_id
  JOIN embeddings e ON e.detection_id = s.detection_id AND e.model_version = %s
 WHERE s.method = 'manual'
"""


def labels_from_truth(cur, model_version: str, truth_path: str | Path) -> Labels:
    """Label the version's detections with the individuals of a ground-truth file.

    Args:
        cur: a cursor on the data database.
        model_version: the embedding model version.
        truth_path: ``ground_truth.json`` whose ``file`` paths are the images' ``rel_path``.
    """
    truth = load_truth(truth_path)
    cur.execute(_VERSION_DETECTIONS, (model_version,))
    per_image: dict[int, list] = defaultdict(list)
    paths = {}
    for det, image, rel, *box in cur.fetchall():
        per_image[image].append((det, box))
        paths[image] = rel
    group, images = {}, {}
    for image, items in per_image.items():
        boxes = truth.get(paths[image], [])
        for i, j in match_boxes([b for _, b in items], [t["bbox"] for t in boxes]):
            group[items[i][0]] = boxes[j]["individual_id"]
            images[items[i][0]] = image
    return Labels(group, images, None, f"labelled:{Path(truth_path).name}")


def labels_from_decisions(cur, model_version: str) -> Labels:
    """Label the version's detections from a person's decisions (manual sightings, not-same)."""
    cur.execute(_MANUAL, (model_version,))
    group, images = {}, {}
    for det, deer, image in cur.fetchall():
        group[det], images[det] = ("deer", deer), image
    cur.execute("SELECT left_detections, right_detections FROM deer_not_same")
    different = set()
    for left, right in cur.fetchall():
        different.update((min(a, b), max(a, b)) for a in left for b in right if a != b)
    wanted = sorted({d for pair in different for d in pair} - set(group))
    if wanted:  # not-same detections that are not manual sightings: their own singleton groups
        cur.execute(
            "SELECT d.id, d.image_id FROM detections d JOIN embeddings e ON e.detection_id = d.id"
            " AND e.model_version = %s WHERE d.id = ANY(%s)",
            (model_version, wanted),
        )
        for det, image in cur.fetchall():
            group[det], images[det] = ("detection", det), image
    return Labels(group, images, different, "review")


def fit_threshold(cur, model_version: str, labels: Labels, seed: int = 0) -> Fit:
    """Fit the match threshold that best separates same from different labelled pairs.

    Args:
        cur: a cursor on the data database (the version's embeddings are read from it).
        model_version: the embedding model version.
        labels: labelled detections of that version.
        seed: sampling seed when there are more than :data:`MAX_DETECTIONS`.

    Raises:
        CalibrationDataError: fewer than :data:`MIN_PAIRS` same or different pairs.
    """
    ids = sorted(labels.group)
    if len(ids) > MAX_DETECTIONS:
        ids = sorted(np.random.default_rng(seed).choice(ids, MAX_DETECTIONS, replace=False))
    found, vectors = read_id_halfvecs(
        cur,
        "SELECT detection_id, embedding FROM embeddings"
        " WHERE model_version = %s AND detection_id = ANY(%s) ORDER BY detection_id",
        (model_version, [int(i) for i in ids]),
    )
    ids = found.tolist()
    sims = normalise_rows(vectors) @ normalise_rows(vectors).T if ids else np.zeros((0, 0))
    codes: dict[object, int] = {}
    group = np.array([codes.setdefault(labels.group[i], len(codes)) for i in ids])
    image = np.array([labels.images[i] for i in ids])
    upper = np.triu(np.ones_like(sims, dtype=bool), 1)
    same = upper & (group[:, None] == group[None, :]) & (image[:, None] != image[None, :])
    if labels.different is None:
        different = upper & (group[:, None] != group[None, :])
    else:
        index = {d: k for k, d in enumerate(ids)}
        different = np.zeros_like(upper)
        for a, b in labels.different:
            if a in index and b in index:
                different[min(index[a], index[b]), max(index[a], index[b])] = True
    pos, neg = sims[same], sims[different]
    if len(pos) < MIN_PAIRS or len(neg) < MIN_PAIRS:
        raise CalibrationDataError(
            f"model {model_version}: {len(pos)} same and {len(neg)} different labelled pairs "
            f"({labels.source}); at least {MIN_PAIRS} of each are needed"
        )
    pos, neg = np.sort(pos), np.sort(neg)
    tpr = 1 - np.searchsorted(pos, GRID, side="left") / len(pos)  # share at or above each cut
    fpr = 1 - np.searchsorted(neg, GRID, side="left") / len(neg)
    best = int(np.argmax(tpr - fpr))  # the first (lowest) cut of the best separation
    top = np.flatnonzero(np.isclose(tpr - fpr, tpr[best] - fpr[best]))
    best = int(top[len(top) // 2])  # the middle of a plateau of equally good cuts
    return Fit(
        threshold=float(GRID[best]),
        same_pairs=len(pos),
        different_pairs=len(neg),
        true_positive_rate=round(float(tpr[best]), 4),
        false_positive_rate=round(float(fpr[best]), 4),
        same_median=round(float(np.median(pos)), 4),
        different_median=round(float(np.median(neg)), 4),
    )
