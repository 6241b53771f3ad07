"""Import MegaDetector batch output (AddaxAI, Timelapse, our own export) as ``detections``.

A user who already ran MegaDetector (or reviewed boxes in Timelapse) can hand the results file to
the pipeline; its boxes become the ``detections`` of a named model version, and ``embeddings`` and
``deer_identities`` run on them without our detector. The format is the one
``exports/megadetector.py`` writes (https://lila.science/megadetector-output-format): per image a
``file`` and ``detections`` of ``{"category", "conf", "bbox": [x, y, w, h] (relative, upright,
origin top left), "classifications": [[category, score], ...]}``.

- Images are matched to ``images`` rows by path: the file as written (relative to
  ``DEER_IMAGE_ROOT``), an absolute path under the image root, or else the one image whose path
  ends with it. Unmatched files are counted, never guessed.
- The class is the top classification's name when it is a deer class (``vocabulary``), else the
  detection category's name through the class map (default: ``animal`` stays ``animal``, meaning
  sex unknown; ``person`` and ``vehicle`` are dropped).
- Boxes below the threshold are dropped (MegaDetector writes boxes down to 0.005).
- The whole file is checked before anything is written, then every matched image's boxes of the
  model version are replaced in one transaction (natural key: image, version, rank), so a
  malformed file changes nothing and a re-import keeps detection ids.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from deer_pipeline.errors import DeerError
from deer_pipeline.vocabulary import DEER_CLASSES

DEFAULT_CLASS_MAP = {"person": "", "vehicle": ""}
DEFAULT_THRESHOLD = 0.2
_SLACK = 1e-3  # rounding in writers: a box may reach 1.0005


class MalformedResults(DeerError):
    """The results file is not MegaDetector batch output; the message says where."""


@dataclass(frozen=True)
class ImportedBox:
    """One box to store, in relative coordinates."""

    class_name: str
    confidence: float
    bbox: tuple[float, float, float, float]
    class_scores: dict[str, float] | None = None


@dataclass
class ParsedResults:
    """A checked results file: boxes per file path, and the detector's name."""

    detector: str
    boxes: dict[str, list[ImportedBox]] = field(default_factory=dict)
    failed: int = 0
    below_threshold: int = 0
    dropped_by_class: int = 0


def _fail(where: str, what: str) -> MalformedResults:
    return MalformedResults(f"malformed MegaDetector results: {where}: {what}")


def _number(value, where: str, lo: float = 0.0, hi: float = 1.0 + _SLACK) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(where, f"expected a number, got {value!r}")
    if not lo <= value <= hi:
        raise _fail(where, f"{value} is outside [{lo}, {hi:g}]")
    return float(value)


def _categories(doc: dict, key: str) -> dict[str, str]:
    cats = doc.get(key, {} if key != "detection_categories" else None)
    if not isinstance(cats, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in cats.items()
    ):
        raise _fail(key, "expected an object of category id -> name")
    return cats


def _box(det, where: str, det_cats, cls_cats, class_map, threshold, parsed) -> ImportedBox | None:
    if not isinstance(det, dict):
        raise _fail(where, "a detection must be an object")
    category = det.get("category")
    if category not in det_cats:
        raise _fail(where, f"category {category!r} is not in detection_categories")
    conf = _number(det.get("conf"), f"{where}.conf")
    bbox = det.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4:
        raise _fail(f"{where}.bbox", "expected [x, y, width, height]")
    x, y, w, h = (_number(v, f"{where}.bbox") for v in bbox)
    if x + w > 1 + _SLACK or y + h > 1 + _SLACK:
        raise _fail(f"{where}.bbox", f"{bbox} reaches outside the image")
    scores = {}
    for k, pair in enumerate(det.get("classifications") or []):
        if not isinstance(pair, list) or len(pair) != 2 or pair[0] not in cls_cats:
            raise _fail(f"{where}.classifications[{k}]", f"expected [category, score]: {pair!r}")
        name = cls_cats[pair[0]]
        scores[name] = max(scores.get(name, 0.0), _number(pair[1], f"{where}.classifications"))
    if conf < threshold:
        parsed.below_threshold += 1
        return None
    top = max(scores, key=scores.get) if scores else None
    if top in DEER_CLASSES:
        name = top
    else:
        label = det_cats[category]
        name = class_map.get(top, None) if top in class_map else class_map.get(label, label)
    if not name:
        parsed.dropped_by_class += 1
        return None
    deer_scores = {k: v for k, v in scores.items() if k in DEER_CLASSES}
    return ImportedBox(name, conf, (x, y, min(w, 1 - x), min(h, 1 - y)), deer_scores or None)


def parse_results(
    doc: object,
    class_map: dict[str, str] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> ParsedResults:
    """Check a MegaDetector batch-output document and collect its boxes.

    Args:
        doc: the parsed JSON.
        class_map: detection (or classification) category name -> stored class name; an empty
            name drops the box. Default ``DEFAULT_CLASS_MAP``.
        threshold: boxes with a lower ``conf`` are dropped.

    Returns:
        The boxes per file (as written in the file, forward slashes).

    Raises:
        MalformedResults: anything that is not the format, with where it is.
    """
    class_map = DEFAULT_CLASS_MAP if class_map is None else class_map
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise _fail("top level", "expected an object with an 'images' list")
    info = doc.get("info", {})
    if not isinstance(info, dict):
        raise _fail("info", "expected an object")
    det_cats = _categories(doc, "detection_categories")
    cls_cats = _categories(doc, "classification_categories")
    parsed = ParsedResults(detector=str(info.get("detector") or "megadetector"))
    for n, image in enumerate(doc["images"]):
        where = f"images[{n}]"
        if not isinstance(image, dict) or not isinstance(image.get("file"), str):
            raise _fail(where, "expected an object with a 'file' path")
        file = image["file"].replace("\\", "/")
        if file in parsed.boxes:
            raise _fail(where, f"{file!r} appears twice")
        dets = image.get("detections")
        if image.get("failure") is not None or dets is None:
            parsed.failed += 1
            continue
        if not isinstance(dets, list):
            raise _fail(f"{where}.detections", "expected a list")
        boxes = [
            _box(d, f"{where}.detections[{k}]", det_cats, cls_cats, class_map, threshold, parsed)
            for k, d in enumerate(dets)
        ]
        parsed.boxes[file] = sorted(
            (b for b in boxes if b is not None), key=lambda b: -b.confidence
        )
    return parsed


def read_results(path: str | Path, **kwargs) -> ParsedResults:
    """Read and check a results file (see ``parse_results``); one-line errors."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MalformedResults(f"cannot read {path}: {exc}") from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MalformedResults(
            f"malformed MegaDetector results: {path} is not JSON ({exc})"
        ) from None
    return parse_results(doc, **kwargs)


def _match(cur, files: list[str], image_root: Path) -> tuple[dict[str, tuple], int]:
    """Match result files to ``ok`` images: file -> (image id, width, height), and duplicates.

    Duplicates are files the database knows as copies of another image (their boxes are the
    original's), counted and skipped.
    """
    cur.execute("SELECT rel_path, id, width, height, status FROM images")
    rows = {rel.replace("\\", "/"): (i, w, h, st) for rel, i, w, h, st in cur.fetchall()}
    by_suffix: dict[str, list[str]] = {}
    for rel in rows:
        parts = PurePosixPath(rel).parts
        for k in range(1, len(parts)):
            by_suffix.setdefault("/".join(parts[k:]), []).append(rel)
    root = image_root.as_posix().rstrip("/") + "/"
    out, duplicates = {}, 0
    for file in files:
        rel = file[len(root) :] if file.startswith(root) else file
        if rel not in rows and len(by_suffix.get(rel, [])) == 1:
            rel = by_suffix[rel][0]
        image_id, width, height, status = rows.get(rel, (None, None, None, None))
        duplicates += status == "duplicate"
        if status == "ok" and width and height:
            out[file] = (image_id, width, height)
    return out, duplicates


def store_results(conn, parsed: ParsedResults, model_version: str, image_root: Path) -> dict:
    """Replace the matched images' boxes of ``model_version`` in one transaction.

    Args:
        conn: a psycopg2 connection to the data database (committed on success, else rolled
            back).
        parsed: the checked results.
        model_version: the name the boxes are stored under.
        image_root: ``DEER_IMAGE_ROOT``, to match absolute paths.

    Returns:
        Counts: ``images`` (in the file), ``matched``, ``duplicates`` (files the database knows
        as copies of another image: skipped), ``unmatched``, ``detections`` stored,
        ``failed`` (images the file marks failed), ``below_threshold``, ``dropped_by_class``.

    Raises:
        DeerError: no image of the file matches an ``ok`` image in the database.
    """
    # lazily: the CLI (and `import megadetector`'s argument check) starts without psycopg2
    from deer_pipeline.db.inference_store import (
        DETECTION_FIELDS,
        clear_stage,
        stage_tables,
        upsert_detections,
    )

    with conn, conn.cursor() as cur:
        matched, duplicates = _match(cur, list(parsed.boxes), image_root)
        if parsed.boxes and not matched:
            raise DeerError(
                f"none of the {len(parsed.boxes)} images in the results matches an ingested "
                f"image under {image_root}: set DEER_IMAGE_ROOT and run raw_images first"
            )
        columns: dict[str, list] = {name: [] for name in DETECTION_FIELDS}
        for file, (image_id, width, height) in matched.items():
            for rank, b in enumerate(parsed.boxes[file]):
                x, y, w, h = b.bbox
                box = (x * width, y * height, (x + w) * width, (y + h) * height)
                scores = b.class_scores or None
                mono = None  # not measured: no pixels are read on import
                row = (image_id, rank, b.class_name, b.confidence, *box, scores, mono)
                for name, value in zip(DETECTION_FIELDS, row, strict=True):
                    columns[name].append(value)
        stage_tables(cur)
        upsert_detections(cur, model_version, columns, [m[0] for m in matched.values()])
        clear_stage(cur)
    return {
        "images": len(parsed.boxes) + parsed.failed,
        "matched": len(matched),
        "duplicates": duplicates,
        "unmatched": len(parsed.boxes) - len(matched) - duplicates,
        "detections": len(columns["image_id"]),
        "failed": parsed.failed,
        "below_threshold": parsed.below_threshold,
        "dropped_by_class": parsed.dropped_by_class,
    }


def default_model_version(parsed: ParsedResults) -> str:
    """The stored model version when the user names none: ``import:<detector name>``."""
    return f"import:{parsed.detector}"
