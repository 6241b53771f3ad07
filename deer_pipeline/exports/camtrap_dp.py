"""Export the database as a Camtrap DP 1.0.2 package, with ``individualID`` from re-identification.

Camtrap DP (TDWG, https://camtrap-dp.tdwg.org) is how camera-trap data is published; GBIF ingests
it. A package is ``datapackage.json`` plus three CSV tables:

- ``deployments.csv``: one row per camera location (its folder), the span of its capture times;
- ``media.csv``: one row per ``ok`` image, ``timestamp`` = the camera's local time in the
  configured time zone, ``filePath`` relative to the image root, ``exifData`` as JSON;
- ``observations.csv``: one ``media``-level row per detection (the newest detector version of its
  image, as the MegaDetector export picks), with a normalised box, the configured scientific name,
  ``sex``/``lifeStage`` from the class after corrections (``CAMTRAP_TERMS``), ``individualID``
  from the deer the sighting belongs to, ``classificationMethod`` ``human`` where a person
  corrected the class (else ``machine``, with the detector's confidence); plus one ``event``-level
  row per burst and individual (unidentified boxes: per burst and class, counted as the most boxes
  of that class in one frame).

Boxes a person marked ``not-deer`` are left out; duplicates, failed and missing files are not
media. Deployments need coordinates: the settings map a location (key or folder) to latitude and
longitude; a location without them gets 0, 0 and says so in ``deploymentComments``.
"""

from __future__ import annotations

import csv
import json
import mimetypes
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from deer_pipeline.errors import DeerError
from deer_pipeline.ingest.store import location_names
from deer_pipeline.vocabulary import CAMTRAP_TERMS, individual_id

VERSION = "1.0.2"
BASE_URL = f"https://raw.githubusercontent.com/tdwg/camtrap-dp/{VERSION}"
PROFILE_URL = f"{BASE_URL}/camtrap-dp-profile.json"
TABLES = ("deployments", "media", "observations")
DEFAULT_SCIENTIFIC_NAME = "Odocoileus virginianus"
DEFAULT_TIMEZONE = "UTC"
NO_COORDINATES = "coordinates not configured: latitude and longitude are placeholders (0, 0)"

DEPLOYMENT_FIELDS = (
    "deploymentID",
    "locationID",
    "locationName",
    "latitude",
    "longitude",
    "coordinateUncertainty",
    "deploymentStart",
    "deploymentEnd",
    "setupBy",
    "cameraID",
    "cameraModel",
    "cameraDelay",
    "cameraHeight",
    "cameraDepth",
    "cameraTilt",
    "cameraHeading",
    "detectionDistance",
    "timestampIssues",
    "baitUse",
    "featureType",
    "habitat",
    "deploymentGroups",
    "deploymentTags",
    "deploymentComments",
)
MEDIA_FIELDS = (
    "mediaID",
    "deploymentID",
    "captureMethod",
    "timestamp",
    "filePath",
    "filePublic",
    "fileName",
    "fileMediatype",
    "exifData",
    "favorite",
    "mediaComments",
)
OBSERVATION_FIELDS = (
    "observationID",
    "deploymentID",
    "mediaID",
    "eventID",
    "eventStart",
    "eventEnd",
    "observationLevel",
    "observationType",
    "cameraSetupType",
    "scientificName",
    "count",
    "lifeStage",
    "sex",
    "behavior",
    "individualID",
    "individualPositionRadius",
    "individualPositionAngle",
    "individualSpeed",
    "bboxX",
    "bboxY",
    "bboxWidth",
    "bboxHeight",
    "classificationMethod",
    "classifiedBy",
    "classificationTimestamp",
    "classificationProbability",
    "observationTags",
    "observationComments",
)


@dataclass(frozen=True)
class CamtrapSettings:
    """What the database does not know about a survey; every field has a visible default."""

    timezone: str = DEFAULT_TIMEZONE
    scientific_name: str = DEFAULT_SCIENTIFIC_NAME
    project_title: str = "Trail-camera survey (deer_pipeline)"
    contributor: str = "deer_pipeline user"
    sampling_design: str = "opportunistic"
    coordinates: dict[str, tuple[float, float]] = field(default_factory=dict)
    event_observations: bool = True

    def zone(self) -> ZoneInfo:
        """Return the time zone, or raise a one-line ``DeerError`` for an unknown name."""
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise DeerError(
                f"unknown time zone {self.timezone!r} (use an IANA name, e.g. America/Chicago)"
            ) from exc


_LOCATIONS = """
SELECT i.location_key, min(i.captured_at), max(i.captured_at),
       mode() WITHIN GROUP (ORDER BY i.camera_model), bool_or(i.captured_at_source = 'file_mtime')
  FROM images i
 WHERE i.status = 'ok' AND i.captured_at IS NOT NULL
 GROUP BY i.location_key ORDER BY i.location_key
"""
_MEDIA = """
SELECT id, location_key, captured_at, rel_path, format, camera_make, camera_model,
       camera_serial, width, height, orientation, captured_at_source, burst_id
  FROM images WHERE status = 'ok' AND captured_at IS NOT NULL ORDER BY location_key, captured_at, id
"""
_OBSERVATIONS = """
SELECT d.id, d.image_id, d.class_name, d.corrected,
       d.confidence, d.x1, d.y1, d.x2, d.y2, s.deer_id, d.model_version, d.created_at,
       d.corrected_at, d.corrected_by
  FROM current_detections d
  LEFT JOIN sightings s ON s.detection_id = d.id
 ORDER BY d.image_id, d.det_index
"""


def _stamp(value: datetime | None, zone: ZoneInfo) -> str:
    """A camera-local naive time (or an aware one) as ISO 8601 with an offset."""
    if value is None:
        return ""
    aware = value.replace(tzinfo=zone) if value.tzinfo is None else value
    return aware.isoformat(timespec="seconds")


def _number(value: float, digits: int = 6) -> str:
    return f"{round(float(value), digits):.{digits}f}".rstrip("0").rstrip(".") or "0"


def _bbox(x1, y1, x2, y2, width, height) -> dict[str, str]:
    def clip(v: float) -> float:
        return min(1.0, max(0.0, v))

    nx1, ny1 = clip(x1 / width), clip(y1 / height)
    nw = max(clip(x2 / width) - nx1, 1e-6)
    nh = max(clip(y2 / height) - ny1, 1e-6)
    return {
        "bboxX": _number(nx1),
        "bboxY": _number(ny1),
        "bboxWidth": _number(min(nw, 1.0)),
        "bboxHeight": _number(min(nh, 1.0)),
    }


def _terms(class_name: str) -> tuple[str, str]:
    sex, life_stage = CAMTRAP_TERMS.get(class_name, (None, ""))
    return sex or "", life_stage


def _deployments(rows, names: dict[str, str], settings: CamtrapSettings, zone) -> list[dict]:
    out = []
    for key, start, end, model, mtime in rows:
        folder = names.get(key, key)  # locationName: the folder as the person named it
        coords = settings.coordinates.get(key) or settings.coordinates.get(folder)
        out.append(
            {
                "deploymentID": key,
                "locationID": key,
                "locationName": folder,
                "latitude": _number(coords[0]) if coords else "0",
                "longitude": _number(coords[1]) if coords else "0",
                "deploymentStart": _stamp(start, zone),
                "deploymentEnd": _stamp(end, zone),
                "cameraModel": model or "",
                "timestampIssues": "true" if mtime else "false",
                "deploymentComments": "" if coords else NO_COORDINATES,
            }
        )
    return out


def _media(rows, zone: ZoneInfo) -> tuple[list[dict], dict[int, dict]]:
    out, by_id = [], {}
    for row in rows:
        (image_id, key, taken, rel, fmt, make, model, serial, w, h, orient, source, burst) = row
        exif = {
            "Make": make,
            "Model": model,
            "SerialNumber": serial,
            "ImageWidth": w,
            "ImageHeight": h,
            "Orientation": orient,
            "captureTimeSource": source,
        }
        name = Path(rel).name
        media = {
            "mediaID": str(image_id),
            "deploymentID": key,
            "captureMethod": "activityDetection",
            "timestamp": _stamp(taken, zone),
            "filePath": rel.replace("\\", "/"),
            "filePublic": "false",
            "fileName": name,
            "fileMediatype": mimetypes.guess_type(name)[0] or f"image/{(fmt or 'jpeg').lower()}",
            "exifData": json.dumps({k: v for k, v in exif.items() if v is not None}),
        }
        out.append(media)
        by_id[image_id] = {**media, "width": w, "height": h, "burst": burst or image_id}
    return out, by_id


def _observations(rows, media: dict[int, dict], settings: CamtrapSettings, zone) -> list[dict]:
    out = []
    for (
        det_id,
        image_id,
        cls,
        corrected,
        conf,
        x1,
        y1,
        x2,
        y2,
        deer,
        version,
        made,
        fixed,
        who,
    ) in rows:
        m = media.get(image_id)
        if m is None or not m["width"] or not m["height"]:
            continue
        sex, life_stage = _terms(cls)
        out.append(
            {
                "observationID": str(det_id),
                "deploymentID": m["deploymentID"],
                "mediaID": m["mediaID"],
                "eventID": f"burst-{m['burst']}",
                "eventStart": m["timestamp"],
                "eventEnd": m["timestamp"],
                "observationLevel": "media",
                "observationType": "animal",
                "scientificName": settings.scientific_name,
                "count": "1",
                "lifeStage": life_stage,
                "sex": sex,
                "individualID": individual_id(deer),
                **_bbox(x1, y1, x2, y2, m["width"], m["height"]),
                "classificationMethod": "human" if corrected else "machine",
                "classifiedBy": (who or "reviewer") if corrected else f"deer_pipeline {version}",
                "classificationTimestamp": _stamp(fixed if corrected else made, zone),
                "classificationProbability": "1" if corrected else _number(conf, 4),
                "_class": cls,
                "_frame": image_id,
                "_deer": deer,
            }
        )
    return out


def _events(media_rows: list[dict]) -> list[dict]:
    """Event-level rows: one per burst and individual, or per burst and class when unidentified."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in media_rows:
        who = row["_deer"] if row["_deer"] is not None else f"class:{row['_class']}"
        groups[(row["eventID"], who)].append(row)
    out = []
    for (event, who), rows in groups.items():
        first = rows[0]
        per_frame: dict[int, int] = defaultdict(int)
        for row in rows:
            per_frame[row["_frame"]] += 1
        human = any(r["classificationMethod"] == "human" for r in rows)
        out.append(
            {
                **{k: first[k] for k in ("deploymentID", "eventID", "observationType")},
                **{k: first[k] for k in ("scientificName", "lifeStage", "sex", "individualID")},
                "observationID": f"{event}-{who}".replace(":", "-"),
                "mediaID": "",
                "eventStart": min(r["eventStart"] for r in rows),
                "eventEnd": max(r["eventEnd"] for r in rows),
                "observationLevel": "event",
                "count": "1" if first["_deer"] is not None else str(max(per_frame.values())),
                "classificationMethod": "human" if human else "machine",
                "classifiedBy": "deer_pipeline re-identification",
            }
        )
    return out


def _datapackage(settings, deployments, media, created: datetime) -> dict:
    coords = [
        (float(d["longitude"]), float(d["latitude"]))
        for d in deployments
        if not d["deploymentComments"]
    ] or [(0.0, 0.0)]
    lons, lats = [c[0] for c in coords], [c[1] for c in coords]
    ring = [
        [min(lons), min(lats)],
        [max(lons), min(lats)],
        [max(lons), max(lats)],
        [min(lons), max(lats)],
        [min(lons), min(lats)],
    ]
    days = sorted(m["timestamp"][:10] for m in media) or [created.date().isoformat()]
    return {
        "resources": [
            {
                "name": name,
                "path": f"{name}.csv",
                "profile": "tabular-data-resource",
                "format": "csv",
                "mediatype": "text/csv",
                "encoding": "utf-8",
                "schema": f"{BASE_URL}/{name}-table-schema.json",
            }
            for name in TABLES
        ],
        "profile": PROFILE_URL,
        "name": "deer-pipeline-export",
        "id": str(uuid.uuid4()),
        "created": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "title": settings.project_title,
        "contributors": [{"title": settings.contributor, "role": "contact"}],
        "project": {
            "title": settings.project_title,
            "samplingDesign": settings.sampling_design,
            "captureMethod": ["activityDetection"],
            "individualAnimals": True,
            "observationLevel": ["media", "event"] if settings.event_observations else ["media"],
        },
        "spatial": {"type": "Polygon", "coordinates": [ring]},
        "temporal": {"start": date.fromisoformat(days[0]).isoformat(), "end": days[-1]},
        "taxonomic": [{"scientificName": settings.scientific_name, "taxonRank": "species"}],
    }


def _write_csv(path: Path, fields: tuple[str, ...], rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def write_camtrap_dp(cur, out_dir: str | Path, settings: CamtrapSettings | None = None) -> dict:
    """Write a Camtrap DP 1.0.2 package of everything in the database.

    Args:
        cur: a psycopg2 cursor on the data database.
        out_dir: the package folder (created; its four files are replaced).
        settings: time zone, scientific name, project and coordinates (defaults: UTC,
            *Odocoileus virginianus*, no coordinates).

    Returns:
        Counts: ``path``, ``deployments``, ``media``, ``observations`` (media level),
        ``event_observations``, ``individuals``, ``human_classified``, ``without_coordinates``.
    """
    settings = settings or CamtrapSettings()
    zone = settings.zone()
    cur.execute(_LOCATIONS)
    deployments = _deployments(cur.fetchall(), location_names(cur), settings, zone)
    cur.execute(_MEDIA)
    media, by_id = _media(cur.fetchall(), zone)
    cur.execute(_OBSERVATIONS)
    observations = _observations(cur.fetchall(), by_id, settings, zone)
    events = _events(observations) if settings.event_observations else []
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_csv(out / "deployments.csv", DEPLOYMENT_FIELDS, deployments)
    _write_csv(out / "media.csv", MEDIA_FIELDS, media)
    _write_csv(out / "observations.csv", OBSERVATION_FIELDS, observations + events)
    package = _datapackage(settings, deployments, media, datetime.now(UTC))
    (out / "datapackage.json").write_text(json.dumps(package, indent=2), encoding="utf-8")
    return {
        "path": str(out),
        "deployments": len(deployments),
        "media": len(media),
        "observations": len(observations),
        "event_observations": len(events),
        "individuals": len({o["individualID"] for o in observations if o["individualID"]}),
        "human_classified": sum(o["classificationMethod"] == "human" for o in observations),
        "without_coordinates": sum(bool(d["deploymentComments"]) for d in deployments),
    }
