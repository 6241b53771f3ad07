"""Export detections in the MegaDetector batch-output format, for Timelapse and AddaxAI.

Biologists review camera-trap photos in Timelapse or AddaxAI, which both read MegaDetector's
batch output (https://lila.science/megadetector-output-format). Our detector finds deer and
names their class, so every box is MegaDetector category ``1`` (animal) and the class goes into
``classifications`` against ``classification_categories`` (doe, fawn, buck), as a species
classifier's output would. Human corrections win (confidence 1.0); ``not-deer`` boxes are left
out. Boxes are ``[x_min, y_min, width, height]`` relative to the upright image, origin top left.
Failed images carry ``failure`` and ``detections: null``; duplicates repeat their original's
boxes; missing files are left out.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

FORMAT_VERSION = "1.4"
DETECTION_CATEGORIES = {"1": "animal", "2": "person", "3": "vehicle"}
CLASSIFICATION_CATEGORIES = {"1": "doe", "2": "fawn", "3": "buck"}
_CLASS_ID = {name: key for key, name in CLASSIFICATION_CATEGORIES.items()}
CONF_DIGITS = 3
COORD_DIGITS = 4

# Per image: its row (duplicates point at their original), and the boxes of the newest detector
# version that ran on the source image, with the class after corrections.
_IMAGES = """
SELECT i.id, i.rel_path, i.status, i.error, COALESCE(i.duplicate_of, i.id) AS source,
       COALESCE(src.width, i.width), COALESCE(src.height, i.height)
  FROM images i LEFT JOIN images src ON src.id = i.duplicate_of
 WHERE i.status IN ('ok', 'failed', 'duplicate')
 ORDER BY i.rel_path
"""

_DETECTIONS = """
SELECT d.image_id, d.confidence, d.x1, d.y1, d.x2, d.y2, d.class_name, d.corrected,
       d.model_version
  FROM current_detections d
 ORDER BY d.image_id, d.det_index
"""


def _bbox(x1, y1, x2, y2, width, height) -> list[float]:
    """Return a normalised [x, y, w, h] box clipped to the image."""

    def clip(v: float) -> float:
        return min(1.0, max(0.0, v))

    nx1, ny1 = clip(x1 / width), clip(y1 / height)
    nx2, ny2 = clip(x2 / width), clip(y2 / height)
    return [
        round(nx1, COORD_DIGITS),
        round(ny1, COORD_DIGITS),
        round(nx2 - nx1, COORD_DIGITS),
        round(ny2 - ny1, COORD_DIGITS),
    ]


def _detection(row, width: int, height: int) -> dict:
    """One detection in MD form (``current_detections`` leaves ``not-deer`` boxes out)."""
    _, conf, x1, y1, x2, y2, name, corrected, _ = row
    out = {
        "category": "1",
        "conf": round(float(conf), CONF_DIGITS),
        "bbox": _bbox(x1, y1, x2, y2, width, height),
    }
    if name in _CLASS_ID:
        score = 1.0 if corrected else round(float(conf), CONF_DIGITS)
        out["classifications"] = [[_CLASS_ID[name], score]]
    return out


def build_megadetector(cur, detector: str) -> dict:
    """Build the MegaDetector batch-output document from the database.

    Args:
        cur: a psycopg2 cursor.
        detector: the detector's name for ``info.detector`` (e.g. the weights file name).

    Returns:
        The document (``info``, ``detection_categories``, ``classification_categories``,
        ``images``).
    """
    cur.execute(_IMAGES)
    images = cur.fetchall()
    cur.execute(_DETECTIONS)
    by_image: dict[int, list] = {}
    versions: set[str] = set()
    for row in cur.fetchall():
        by_image.setdefault(row[0], []).append(row)
        versions.add(row[8])
    cur.execute("SELECT max(created_at) FROM detections")
    done = cur.fetchone()[0]
    cur.execute("SELECT max(corrected_at) FROM detection_corrections")
    corrected = cur.fetchone()[0]
    out_images = []
    for _, rel_path, status, error, source, width, height in images:
        entry: dict = {"file": rel_path.replace(os.sep, "/")}
        if status == "failed":
            entry.update(failure=error or "failed", detections=None)
        elif not width or not height:
            entry.update(failure="image size unknown", detections=None)
        else:
            dets = [_detection(r, width, height) for r in by_image.get(source, [])]
            entry["detections"] = dets
            entry["max_detection_conf"] = max((d["conf"] for d in dets), default=0.0)
        out_images.append(entry)
    return {
        "info": _info(detector, versions, done, corrected),
        "detection_categories": dict(DETECTION_CATEGORIES),
        "classification_categories": dict(CLASSIFICATION_CATEGORIES),
        "images": out_images,
    }


def _info(
    detector: str, versions: set[str], done: datetime | None, corrected: datetime | None
) -> dict:
    def stamp(t: datetime | None) -> str:
        return (t or datetime.now()).strftime("%Y-%m-%d %H:%M:%S")

    return {
        "format_version": FORMAT_VERSION,
        "detector": detector,
        "detection_completion_time": stamp(done),
        "classifier": "deer_pipeline detector classes (doe, fawn, buck) with human corrections",
        "classification_completion_time": stamp(max(filter(None, (done, corrected)), default=None)),
        "detector_metadata": {
            "model_versions": sorted(versions),
            "typical_detection_threshold": 0.5,
            "conservative_detection_threshold": 0.25,
        },
    }


def write_megadetector(cur, path: str | Path, detector: str) -> dict:
    """Write the MegaDetector JSON file; return counts (images, detections, failed)."""
    doc = build_megadetector(cur, detector)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    tmp.replace(path)
    return {
        "path": str(path),
        "images": len(doc["images"]),
        "detections": sum(len(i.get("detections") or []) for i in doc["images"]),
        "failed": sum(1 for i in doc["images"] if i.get("failure")),
    }
