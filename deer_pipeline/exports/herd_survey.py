"""The herd survey: unique bucks, does and fawns, ratios, activity and the camera-survey estimate.

People put cameras out to know the herd: how many deer, how many bucks per doe, how many fawns per
doe, where and when they move. The classic camera survey (Jacobson et al. 1997) counts unique
antlered bucks and scales them by the ratio of doe and fawn photos to buck photos; it is low when
bucks are photographed more often than does (Moore et al. 2014). With re-identification every
doe and fawn is counted too, so this report shows both side by side.

:func:`read_survey` reads the tables for a window of camera-local dates and a set of locations
into a :class:`Survey`; :func:`summary` turns it into the contract's ``summary.json``;
:func:`write_herd_survey` writes ``index.html`` (plots as PNG files beside it, each with its
numbers as a table) and ``summary.json``. What counts:

- photos: the scope's ``ok`` images with a capture time, in the window, at the locations;
- detections: the newest detector version of each photo, class after a person's correction,
  boxes a person marked ``not-deer`` left out; a *deer detection* has a deer class or a deer;
- unique deer: the deer with a sighting on such a detection, by ``deer.sex``; *reviewed* when a
  person decided on it (a ``manual`` sighting or a corrected class among its sightings);
- camera-days: per location, the days from its first to its last photo (its cameras' working
  span as far as the photos tell), clipped to the window, inclusive;
- night: infrared frames, grey pictures, judged once per burst from its first frame: the flag
  the vision pipeline measured on the box (``detections.monochrome``); for boxes it did not
  measure (imports), the frame's file under the image root (``vision/monochrome.py``); without
  an image root, or for a file that cannot be read, only frames stored as greyscale
  (``color_mode`` ``L``) count as night.

Figures that cannot be computed (a ratio over zero) are ``None``, never a guess.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from deer_pipeline.errors import DeerError
from deer_pipeline.ingest.store import location_names
from deer_pipeline.vision.monochrome import GREY_MODES, frame_is_monochrome
from deer_pipeline.vocabulary import DEER_CLASSES, UNKNOWN_SEX

CLASSES = ("buck", "doe", "fawn")
"""The report's order of the deer classes (the survey's, not the detector's)."""
UNIQUE_KEYS = (*CLASSES, UNKNOWN_SEX)
SUMMARY = "summary.json"
PAGE = "index.html"
TOP_DEER = 12
assert set(CLASSES) == set(DEER_CLASSES)

_IMAGES = """
SELECT i.location_key, min(i.captured_at)::date, max(i.captured_at)::date,
       count(*) FILTER (WHERE i.captured_at >= %(start)s AND i.captured_at < %(stop)s),
       min(i.captured_at) FILTER (WHERE i.captured_at >= %(start)s AND i.captured_at < %(stop)s),
       max(i.captured_at) FILTER (WHERE i.captured_at >= %(start)s AND i.captured_at < %(stop)s)
  FROM images i
 WHERE i.status = 'ok' AND i.captured_at IS NOT NULL AND i.location_key = ANY(%(keys)s)
 GROUP BY i.location_key
"""

# One row per detection of the newest detector version of each photo in scope.
_DETECTIONS = """
WITH scope AS (
    SELECT id, location_key, captured_at, color_mode, rel_path, COALESCE(burst_id, id) AS burst
      FROM images
     WHERE status = 'ok' AND captured_at >= %(start)s AND captured_at < %(stop)s
       AND location_key = ANY(%(keys)s))
SELECT d.id, scope.location_key, scope.captured_at, scope.color_mode,
       d.class_name, s.deer_id, scope.rel_path, scope.burst, d.monochrome
  FROM current_detections d
  JOIN scope ON scope.id = d.image_id
  LEFT JOIN sightings s ON s.detection_id = d.id
"""

# The deer seen in scope (a sighting on any detector version's box there): sex, and whether a
# person decided on it anywhere (a manual sighting or a corrected class).
_DEER = """
WITH seen AS (
    SELECT DISTINCT s.deer_id
      FROM sightings s JOIN effective_detections d ON d.id = s.detection_id
      JOIN images i ON i.id = d.image_id
     WHERE i.status = 'ok' AND i.captured_at >= %(start)s AND i.captured_at < %(stop)s
       AND i.location_key = ANY(%(keys)s))
SELECT r.id, r.sex, bool_or(s.method = 'manual') OR bool_or(COALESCE(d.corrected, false))
  FROM deer r JOIN seen ON seen.deer_id = r.id
  JOIN sightings s ON s.deer_id = r.id
  LEFT JOIN effective_detections d ON d.id = s.detection_id
 GROUP BY r.id, r.sex
"""

# Every sighting in scope of the deer seen there (any detector version), for per-deer figures.
_SIGHTINGS = """
SELECT s.deer_id, i.location_key, i.captured_at
  FROM sightings s JOIN effective_detections d ON d.id = s.detection_id
  JOIN images i ON i.id = d.image_id
 WHERE i.status = 'ok' AND i.captured_at >= %(start)s AND i.captured_at < %(stop)s
   AND i.location_key = ANY(%(keys)s)
 ORDER BY s.deer_id, i.captured_at
"""

_FAR_PAST, _FAR_FUTURE = datetime(1, 1, 1), datetime(9999, 12, 31)


@dataclass
class LocationFigures:
    """One camera location's figures in the window."""

    key: str
    name: str
    camera_days: int = 0
    photos: int = 0
    deer_detections: int = 0
    unique: Counter = field(default_factory=Counter)

    @property
    def rai(self) -> float | None:
        """Deer detections per 100 camera-days (None without camera-days)."""
        return 100.0 * self.deer_detections / self.camera_days if self.camera_days else None


@dataclass
class DeerFigures:
    """One individual in the window: its class, whether a person reviewed it, its sightings."""

    id: int
    sex: str
    reviewed: bool
    times: list[datetime] = field(default_factory=list)
    where: list[str] = field(default_factory=list)
    """The location key of each sighting, in the order of ``times``."""


@dataclass
class Survey:
    """Everything the report shows, read once from the tables."""

    start: date | None
    end: date | None
    locations: list[LocationFigures]
    deer: dict[int, DeerFigures]
    photos: Counter
    deer_detections: int
    activity_day: list[int]
    activity_night: list[int]
    light_from_files: bool = False
    """Night told from the files' pixels (an image root was given), not only from the mode."""
    unreadable_frames: int = 0
    """Bursts whose first frame could not be read to tell day from night (counted as day)."""

    @property
    def camera_days(self) -> int:
        """Camera-days of every location in the window."""
        return sum(loc.camera_days for loc in self.locations)

    @property
    def images(self) -> int:
        """Photos in the window."""
        return sum(loc.photos for loc in self.locations)

    @property
    def unique(self) -> Counter:
        """Unique deer by class (``unknown`` for deer of unknown sex)."""
        return Counter(d.sex if d.sex in UNIQUE_KEYS else UNKNOWN_SEX for d in self.deer.values())

    @property
    def reviewed(self) -> Counter:
        """Unique deer a person decided on, by class."""
        return Counter(d.sex for d in self.deer.values() if d.reviewed)

    @property
    def activity(self) -> list[int]:
        """Deer detections per hour of the camera's clock (0 to 23), day and night together."""
        return [a + b for a, b in zip(self.activity_day, self.activity_night, strict=True)]

    def jacobson(self) -> dict[str, float | None]:
        """The camera-survey estimate (Jacobson et al. 1997).

        Unique bucks, and does and fawns as unique bucks times their photo count over the buck
        photo count. Does, fawns and the total are ``None`` without buck photos (the ratio is
        undefined).
        """
        bucks, buck_photos = self.unique["buck"], self.photos["buck"]
        if not buck_photos:
            return {"bucks": bucks, "does": None, "fawns": None, "total": None}
        does = bucks * self.photos["doe"] / buck_photos
        fawns = bucks * self.photos["fawn"] / buck_photos
        return {"bucks": bucks, "does": does, "fawns": fawns, "total": bucks + does + fawns}

    def ratios(self) -> dict[str, float | None]:
        """Does per buck and fawns per doe from unique individuals (None over zero)."""
        u = self.unique
        return {
            "does_per_buck": _ratio(u["doe"], u["buck"]),
            "fawns_per_doe": _ratio(u["fawn"], u["doe"]),
        }

    def photo_ratios(self) -> dict[str, float | None]:
        """Does per buck and fawns per doe from photo counts (None over zero)."""
        p = self.photos
        return {
            "does_per_buck": _ratio(p["doe"], p["buck"]),
            "fawns_per_doe": _ratio(p["fawn"], p["doe"]),
        }

    def photos_per_deer(self) -> dict[str, float | None]:
        """Photos (detections) per unique individual of each class."""
        return {c: _ratio(self.photos[c], self.unique[c]) for c in CLASSES}


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def resolve_locations(cur, wanted: list[str] | None) -> dict[str, str]:
    """Map the locations asked for (keys or folder names; None: all) to ``{key: name}``.

    Raises:
        DeerError: a location that is neither a key nor a folder name (one line, with the keys).
    """
    names = location_names(cur)
    if not wanted:
        return dict(sorted(names.items(), key=lambda kv: kv[1].lower()))
    by_folder = {name: key for key, name in names.items()}
    out = {}
    for item in wanted:
        key = item if item in names else by_folder.get(item)
        if key is None:
            known = ", ".join(sorted(names)) or "none: run `deer-pipeline run` first"
            raise DeerError(f"unknown location {item!r} (known location keys: {known})")
        out[key] = names[key]
    return out


def read_survey(
    cur,
    start: date | None = None,
    end: date | None = None,
    locations: list[str] | None = None,
    image_root: Path | None = None,
) -> Survey:
    """Read the survey's figures from the tables.

    Args:
        cur: a psycopg2 cursor on the data database.
        start: first camera-local date of the window (None: the first photo's).
        end: last camera-local date, inclusive (None: the last photo's).
        locations: location keys or folder names (None: every location).
        image_root: ``DEER_IMAGE_ROOT``, to tell infrared frames from their pixels (None: from
            the stored colour mode only).

    Returns:
        The :class:`Survey`; its window is the dates given, else the first or last date of the
        photos in the window (``None`` when there are none).

    Raises:
        DeerError: an unknown location, or ``start`` after ``end``.
    """
    if start and end and start > end:
        raise DeerError(f"--from {start} is after --to {end}")
    names = resolve_locations(cur, locations)
    lo = datetime.combine(start, datetime.min.time()) if start else _FAR_PAST
    hi = datetime.combine(end + timedelta(days=1), datetime.min.time()) if end else _FAR_FUTURE
    params = {"keys": list(names), "start": lo, "stop": hi}
    cur.execute(_IMAGES, params)
    spans = {row[0]: row[1:] for row in cur.fetchall()}
    window_start = start or min((s[3].date() for s in spans.values() if s[3]), default=None)
    window_end = end or max((s[4].date() for s in spans.values() if s[4]), default=None)
    figures = {key: LocationFigures(key, name) for key, name in names.items()}
    for key, (first, last, n, _, _) in spans.items():
        loc = figures[key]
        loc.photos = n
        lo_day, hi_day = max(first, start or first), min(last, end or last)
        loc.camera_days = max(0, (hi_day - lo_day).days + 1)
    photos: Counter = Counter()
    day, night = [0] * 24, [0] * 24
    deer_detections = 0
    cur.execute(_DETECTIONS, params)
    rows = cur.fetchall()
    deer_rows = [r for r in rows if r[4] in CLASSES or r[5] is not None]
    infrared, unreadable = _infrared_bursts(deer_rows, image_root)
    photos.update(r[4] for r in rows if r[4] in CLASSES)
    for _, key, when, _, _, _, _, burst, _ in deer_rows:
        deer_detections += 1
        figures[key].deer_detections += 1
        (night if infrared[burst] else day)[when.hour] += 1
    cur.execute(_DEER, params)
    deer = {i: DeerFigures(i, sex, bool(reviewed)) for i, sex, reviewed in cur.fetchall()}
    cur.execute(_SIGHTINGS, params)
    for deer_id, key, when in cur.fetchall():
        if deer_id in deer:
            deer[deer_id].times.append(when)
            deer[deer_id].where.append(key)
    for d in deer.values():
        for key in set(d.where):
            figures[key].unique[d.sex if d.sex in UNIQUE_KEYS else UNKNOWN_SEX] += 1
    return Survey(
        start=window_start,
        end=window_end,
        locations=list(figures.values()),
        deer=deer,
        photos=photos,
        deer_detections=deer_detections,
        activity_day=day,
        activity_night=night,
        light_from_files=image_root is not None,
        unreadable_frames=unreadable,
    )


def _infrared_bursts(rows, image_root: Path | None) -> tuple[dict[int, bool], int]:
    """Burst -> whether it was shot in infrared (its first frame decides); and unreadable count."""
    first: dict[int, tuple] = {}
    for row in sorted(rows, key=lambda r: (r[7], r[2], r[6])):
        first.setdefault(row[7], row)
    out, unreadable = {}, 0
    for burst, (_, _, _, mode, _, _, rel_path, _, measured) in first.items():
        grey = measured if measured is not None else mode in GREY_MODES
        if measured is None and not grey and image_root is not None:
            # not measured at inference (imported boxes): read the frame itself
            seen = frame_is_monochrome(Path(image_root) / rel_path)
            unreadable += seen is None
            grey = bool(seen)
        out[burst] = grey
    return out, unreadable


def _unique(counts: Counter) -> dict[str, int]:
    return {**{k: int(counts[k]) for k in UNIQUE_KEYS}, "total": int(sum(counts.values()))}


def summary(survey: Survey) -> dict:
    """The contract's ``summary.json`` object (``None`` where a figure cannot be computed)."""
    return {
        "window": {
            "start": survey.start.isoformat() if survey.start else None,
            "end": survey.end.isoformat() if survey.end else None,
        },
        "camera_days": survey.camera_days,
        "unique": _unique(survey.unique),
        "reviewed_deer": int(sum(survey.reviewed.values())),
        "photos": {c: int(survey.photos[c]) for c in CLASSES},
        "jacobson": survey.jacobson(),
        "ratios": survey.ratios(),
        "per_location": [
            {"location": loc.key, "name": loc.name, "unique": _unique(loc.unique), "rai": loc.rai}
            for loc in survey.locations
        ],
        "activity_by_hour": survey.activity,
    }


def unreviewed_shares(survey: Survey) -> dict[str, float]:
    """Share of each non-zero unique count (by class and in total) resting on unreviewed deer."""
    unique, reviewed = survey.unique, survey.reviewed
    out = {c: 1.0 - reviewed[c] / unique[c] for c in UNIQUE_KEYS if unique[c]}
    total = sum(unique.values())
    if total:
        out["total"] = 1.0 - sum(reviewed.values()) / total
    return out


def write_herd_survey(
    cur,
    out_dir: str | Path,
    start: date | None = None,
    end: date | None = None,
    locations: list[str] | None = None,
    image_root: Path | None = None,
) -> dict:
    """Write the herd survey report: ``index.html``, its PNG plots and ``summary.json``.

    Args:
        cur: a psycopg2 cursor on the data database.
        out_dir: the report folder (created; its files are replaced).
        start: first camera-local date of the window (None: the first photo's).
        end: last camera-local date, inclusive (None: the last photo's).
        locations: location keys or folder names (None: every location).
        image_root: ``DEER_IMAGE_ROOT``, to tell infrared frames from their pixels.

    Returns:
        The summary, plus ``path`` (the page), ``images`` (photos in the window),
        ``plots`` (PNG files written) and ``survey`` (the :class:`Survey`).

    Raises:
        DeerError: an unknown location or an empty window range.
    """
    from deer_pipeline.exports.herd_page import render_page
    from deer_pipeline.exports.herd_plots import draw_plots

    survey = read_survey(cur, start, end, locations, image_root)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = summary(survey)
    plots = draw_plots(survey, out) if survey.images else {}
    for stale in out.glob("herd-*.png"):
        if stale.name not in plots.values():
            stale.unlink()
    page = out / PAGE
    page.write_text(render_page(survey, data, plots), encoding="utf-8")
    (out / SUMMARY).write_text(json.dumps(data, indent=2), encoding="utf-8")
    return {**data, "path": str(page), "images": survey.images, "plots": plots, "survey": survey}


def sightings_histogram(survey: Survey) -> dict[int, int]:
    """Number of deer by how many sightings each had in the window."""
    counts = Counter(len(d.times) for d in survey.deer.values())
    return dict(sorted(counts.items()))


def most_seen(survey: Survey, n: int = TOP_DEER) -> list[DeerFigures]:
    """The ``n`` deer with the most sightings in the window (ties: lower id first)."""
    return sorted(survey.deer.values(), key=lambda d: (-len(d.times), d.id))[:n]
