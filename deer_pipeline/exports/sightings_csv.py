"""Export every sighting as one CSV row: which deer, where, when, in which photo, how decided.

The CSV is what a biologist opens in a spreadsheet or R to count individuals per location and
season: one row per sighting with the deer's id and sex, the camera location, the capture time,
the image path (relative to the image root), the box in pixels, the detector's confidence, the
class after corrections, how the identity was decided (``burst``, ``match``, ``new``,
``manual``) and the similarity that decided it.
"""

from __future__ import annotations

import csv
from pathlib import Path

COLUMNS = (
    "deer_id",
    "sex",
    "location",
    "folder",
    "captured_at",
    "image",
    "detection_id",
    "class",
    "confidence",
    "x1",
    "y1",
    "x2",
    "y2",
    "method",
    "similarity",
    "tracklet",
)

_QUERY = """
SELECT s.deer_id, dr.sex, i.location_key, l.folder, i.captured_at, i.rel_path, d.id,
       d.class_name, d.confidence, d.x1, d.y1, d.x2, d.y2,
       s.method, s.similarity, s.tracklet_key
  FROM sightings s
  JOIN deer dr ON dr.id = s.deer_id
  JOIN effective_detections d ON d.id = s.detection_id
  JOIN images i ON i.id = d.image_id
  LEFT JOIN locations l ON l.key = i.location_key
 ORDER BY s.deer_id, i.captured_at NULLS LAST, i.rel_path, d.id
"""


def _cell(value) -> object:
    if value is None:
        return ""
    if isinstance(value, float):
        return round(value, 4)
    if hasattr(value, "isoformat"):
        return value.isoformat(sep=" ")
    return value


def write_sightings_csv(cur, path: str | Path) -> dict:
    """Write all sightings to ``path`` (UTF-8 CSV with a header row).

    Returns:
        ``{"path": ..., "sightings": n, "deer": distinct deer, "locations": distinct locations}``.
    """
    cur.execute(_QUERY)
    rows = cur.fetchall()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        writer.writerows([_cell(v) for v in row] for row in rows)
    tmp.replace(path)
    return {
        "path": str(path),
        "sightings": len(rows),
        "deer": len({r[0] for r in rows}),
        "locations": len({r[2] for r in rows}),
    }
