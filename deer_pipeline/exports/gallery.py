"""The per-deer picture gallery: one HTML page with a row per deer and small crops of its photos.

Numbers do not convince a biologist that deer 17 is one animal; pictures do. The page lists every
deer (sex, sightings, first and last seen, locations) with a few crops spread over its sightings
in time, so a lumped or split individual is visible at a glance and can be fixed with
``deer-pipeline deer merge|split``. Crops are small JPEGs next to the page, named by detection id
and kept between runs (detection ids are stable), so refreshing the page only cuts new ones.
"""

from __future__ import annotations

import html
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from deer_pipeline.ingest.store import location_names
from deer_pipeline.vision.decode import DecodeError, decode_file

PAGE = "deer_gallery.html"
THUMBS = "deer_gallery"
THUMB_SIZE = 128
MARGIN = 0.1

_DEER = """
SELECT d.id, d.sex, d.n_sightings, d.first_seen, d.last_seen,
       COALESCE(array_agg(DISTINCT i.location_key) FILTER (WHERE i.id IS NOT NULL), '{}'),
       count(*) FILTER (WHERE s.method = 'manual')
  FROM deer d LEFT JOIN sightings s ON s.deer_id = d.id
  LEFT JOIN detections x ON x.id = s.detection_id LEFT JOIN images i ON i.id = x.image_id
 GROUP BY d.id ORDER BY d.id
"""

_SIGHTINGS = """
SELECT s.deer_id, s.detection_id, i.rel_path, i.captured_at, x.x1, x.y1, x.x2, x.y2
  FROM sightings s JOIN detections x ON x.id = s.detection_id JOIN images i ON i.id = x.image_id
 WHERE s.deer_id = ANY(%s)
 ORDER BY s.deer_id, i.captured_at NULLS LAST, s.detection_id
"""


def spread(items: list, k: int) -> list:
    """Return up to ``k`` items evenly spread over the list (first and last included)."""
    if len(items) <= k:
        return list(items)
    return [items[int(round(i))] for i in np.linspace(0, len(items) - 1, k)]


def cut_thumbnail(image_path: Path, box, out: Path, size: int = THUMB_SIZE) -> bool:
    """Write a small JPEG of a box (with a margin) of an image; False if it cannot be read."""
    try:
        image = decode_file(image_path, min_long_side=None)
    except (DecodeError, OSError):
        return False
    x1, y1, x2, y2 = box
    mx, my = (x2 - x1) * MARGIN, (y2 - y1) * MARGIN
    h, w = image.array.shape[:2]
    left = int(max(0, (x1 - mx) / image.scale_x))
    top = int(max(0, (y1 - my) / image.scale_y))
    right = int(min(w, max(left + 1, (x2 + mx) / image.scale_x)))
    bottom = int(min(h, max(top + 1, (y2 + my) / image.scale_y)))
    crop = Image.fromarray(image.array[top:bottom, left:right])
    crop.thumbnail((size, size))
    out.parent.mkdir(parents=True, exist_ok=True)
    crop.save(out, "JPEG", quality=80)
    return True


def _row(deer, thumbs: list[tuple[str, str]]) -> str:
    deer_id, sex, n, first, last, locations, manual = deer
    pictures = (
        "".join(
            f'<img src="{html.escape(src)}" title="{html.escape(title)}" loading="lazy">'
            for src, title in thumbs
        )
        or "<span class=none>no picture</span>"
    )
    return (
        f"<tr><td class=id>{deer_id}</td><td>{html.escape(sex)}</td><td>{n}"
        f"{f' ({manual} manual)' if manual else ''}</td><td>{first or ''}</td>"
        f"<td>{last or ''}</td><td>{html.escape(', '.join(sorted(locations)))}</td>"
        f"<td class=pics>{pictures}</td></tr>"
    )


def write_gallery(
    cur, image_root: Path, out_dir: Path, per_deer: int = 6, max_deer_with_pictures: int = 500
) -> dict:
    """Write the gallery page and its crops.

    Args:
        cur: a psycopg2 cursor.
        image_root: ``DEER_IMAGE_ROOT`` (image paths in the database are relative to it).
        out_dir: the reports folder (``$DEER_HOME/reports``).
        per_deer: crops per deer, spread over its sightings in time.
        max_deer_with_pictures: crops only for this many deer (the most sighted); the others
            are listed without pictures.

    Returns:
        ``{"path": page, "deer": n, "thumbnails": n, "new_thumbnails": n, "unreadable": n}``.
    """
    names = location_names(cur)  # shown as the folders are named, not as partition keys
    cur.execute(_DEER)
    deer = [(*d[:5], [names.get(k, k) for k in d[5]], d[6]) for d in cur.fetchall()]
    pictured = sorted(deer, key=lambda d: (-d[2], d[0]))[:max_deer_with_pictures]
    cur.execute(_SIGHTINGS, ([d[0] for d in pictured],))
    by_deer: dict[int, list] = defaultdict(list)
    for row in cur.fetchall():
        by_deer[row[0]].append(row)
    thumbs_dir = out_dir / THUMBS
    wanted: dict[int, list[tuple[str, str]]] = defaultdict(list)
    counts = {"thumbnails": 0, "new_thumbnails": 0, "unreadable": 0}
    keep: set[str] = set()
    for deer_id, rows in by_deer.items():
        for _, det_id, rel_path, when, *box in spread(rows, per_deer):
            name = f"d{det_id}.jpg"
            target = thumbs_dir / name
            if not target.exists():
                if not cut_thumbnail(image_root / rel_path, box, target):
                    counts["unreadable"] += 1
                    continue
                counts["new_thumbnails"] += 1
            keep.add(name)
            counts["thumbnails"] += 1
            wanted[deer_id].append((f"{THUMBS}/{name}", f"{rel_path} {when or ''}"))
    if thumbs_dir.is_dir():
        for stale in thumbs_dir.glob("d*.jpg"):
            if stale.name not in keep:
                stale.unlink()
    page = out_dir / PAGE
    out_dir.mkdir(parents=True, exist_ok=True)
    body = "\n".join(_row(d, wanted.get(d[0], [])) for d in deer)
    page.write_text(_HTML.format(count=len(deer), rows=body), encoding="utf-8")
    return {"path": str(page), "deer": len(deer), **counts}


_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Deer gallery</title>
<style>
body {{ font-family: sans-serif; margin: 1em; }}
table {{ border-collapse: collapse; }}
td, th {{ border-bottom: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }}
td.pics img {{ height: 96px; margin-right: 4px; }}
.none {{ color: #888; }}
</style></head><body>
<h1>Individual deer ({count})</h1>
<p>One row per deer: crops spread over its sightings, first to last. Fix mistakes with
<code>deer-pipeline deer merge A B</code> or
<code>deer-pipeline deer split --sighting ID</code>.</p>
<table><thead><tr><th>deer</th><th>sex</th><th>sightings</th><th>first seen</th>
<th>last seen</th><th>locations</th><th>pictures</th></tr></thead><tbody>
{rows}
</tbody></table></body></html>
"""
