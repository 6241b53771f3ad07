"""What the review pages show, read from the database: deer summaries, sightings, the deer list.

Every query is bounded (a few crops per side, one page of the list) and uses the indexes on
``sightings.deer_id`` and ``detections.image_id``, so pages stay fast with tens of thousands of
deer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from deer_pipeline.ingest.store import location_names

BEST_CROPS = 4

_SUMMARY = """
SELECT d.id, d.sex, d.n_sightings, d.first_seen, d.last_seen,
       (SELECT array_agg(DISTINCT i.location_key ORDER BY i.location_key)
          FROM sightings s JOIN detections x ON x.id = s.detection_id
          JOIN images i ON i.id = x.image_id WHERE s.deer_id = d.id),
       (SELECT count(*) FROM sightings s WHERE s.deer_id = d.id AND s.method = 'manual')
  FROM deer d WHERE d.id = ANY(%s)
"""

# The best crops of a deer: most confident first, one per burst before a second of any burst.
_BEST = """
SELECT detection_id, captured_at, location_key, confidence FROM (
  SELECT s.detection_id, i.captured_at, i.location_key, x.confidence,
         row_number() OVER (PARTITION BY COALESCE(i.burst_id, i.id)
                            ORDER BY x.confidence DESC, s.detection_id) AS k
    FROM sightings s JOIN detections x ON x.id = s.detection_id JOIN images i ON i.id = x.image_id
   WHERE s.deer_id = %s) b
 ORDER BY k, confidence DESC, detection_id LIMIT %s
"""

_SIGHTINGS = """
SELECT s.detection_id, i.captured_at, i.location_key, i.rel_path, s.method, s.similarity,
       x.class_name, c.class_name, x.confidence
  FROM sightings s JOIN detections x ON x.id = s.detection_id JOIN images i ON i.id = x.image_id
  LEFT JOIN detection_corrections c ON c.detection_id = s.detection_id
 WHERE s.deer_id = %s ORDER BY i.captured_at NULLS LAST, s.detection_id
"""


@dataclass
class DeerSummary:
    """One side of a proposal, or a row of the list."""

    id: int
    sex: str
    n_sightings: int
    first_seen: object
    last_seen: object
    locations: list[str]
    manual: int
    crops: list[dict]
    location_names: list[str] = field(default_factory=list)  # as the folders are named


def summaries(cur, deer_ids, crops: int = BEST_CROPS) -> dict[int, DeerSummary]:
    """Summaries (with up to ``crops`` best crops each) of the deer that exist."""
    ids = sorted({int(i) for i in deer_ids})
    if not ids:
        return {}
    cur.execute(_SUMMARY, (ids,))
    out = {r[0]: DeerSummary(*r[:5], list(r[5] or []), r[6], []) for r in cur.fetchall()}
    names = location_names(cur)
    for deer_id, summary in out.items():
        summary.location_names = sorted(names.get(k, k) for k in summary.locations)
        if crops:
            cur.execute(_BEST, (deer_id, crops))
            summary.crops = [
                {
                    "detection": r[0],
                    "when": r[1],
                    "location": r[2],
                    "location_name": names.get(r[2], r[2]),
                    "confidence": r[3],
                }
                for r in cur.fetchall()
            ]
    return out


def sightings(cur, deer_id: int) -> list[dict]:
    """Every sighting of a deer in time order, with its class and any correction."""
    cur.execute(_SIGHTINGS, (deer_id,))
    keys = (
        "detection",
        "when",
        "location",
        "rel_path",
        "method",
        "similarity",
        "detected_class",
        "corrected_class",
        "confidence",
    )
    rows = [dict(zip(keys, r, strict=True)) for r in cur.fetchall()]
    names = location_names(cur)
    for row in rows:
        row["location_name"] = names.get(row["location"], row["location"])
    return rows


def detection_deer(cur, detection_id: int) -> int | None:
    """The deer a detection's sighting belongs to (None: no sighting)."""
    cur.execute("SELECT deer_id FROM sightings WHERE detection_id = %s", (detection_id,))
    row = cur.fetchone()
    return row[0] if row else None


@dataclass(frozen=True)
class ListFilter:
    """Filters of the list page (None: any)."""

    location: str | None = None
    sex: str | None = None
    seen_from: date | None = None
    seen_to: date | None = None
    min_sightings: int | None = None
    max_sightings: int | None = None


def list_page(cur, f: ListFilter, offset: int = 0, limit: int = 100) -> tuple[int, list]:
    """Return (number of deer matching, one page of their summaries without crops)."""
    where, params = ["true"], {}
    if f.location:
        where.append(
            "EXISTS (SELECT 1 FROM sightings s JOIN detections x ON x.id = s.detection_id"
            " JOIN images i ON i.id = x.image_id WHERE s.deer_id = d.id"
            " AND i.location_key = %(location)s)"
        )
        params["location"] = f.location
    if f.sex:
        where.append("d.sex = %(sex)s")
        params["sex"] = f.sex
    if f.seen_from:
        where.append("d.last_seen >= %(seen_from)s")
        params["seen_from"] = f.seen_from
    if f.seen_to:
        where.append("d.first_seen < %(seen_to)s::date + 1")
        params["seen_to"] = f.seen_to
    if f.min_sightings is not None:
        where.append("d.n_sightings >= %(min)s")
        params["min"] = f.min_sightings
    if f.max_sightings is not None:
        where.append("d.n_sightings <= %(max)s")
        params["max"] = f.max_sightings
    cur.execute(
        f"SELECT d.id, count(*) OVER () FROM deer d WHERE {' AND '.join(where)}"
        " ORDER BY d.n_sightings DESC, d.id LIMIT %(limit)s OFFSET %(offset)s",
        {**params, "limit": limit, "offset": offset},
    )
    rows = cur.fetchall()
    total = rows[0][1] if rows else 0
    found = summaries(cur, [r[0] for r in rows], crops=1)
    return total, [found[r[0]] for r in rows if r[0] in found]


def locations(cur) -> list[dict]:
    """Every location, for the list filter: ``{"key", "name"}`` by name (the key goes in URLs)."""
    names = location_names(cur)
    return [{"key": k, "name": n} for k, n in sorted(names.items(), key=lambda kv: kv[1].lower())]
