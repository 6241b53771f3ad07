"""Compute a location's rows after an ingest: what is new, changed, gone, duplicated, bursty.

Pure Python over the rows already stored and what this run found, so the whole decision is
testable without a database and the write is just the rows that differ:

- a file read now replaces its row's content columns (new rows take pre-drawn ids);
- a stored file no longer on disk becomes ``missing`` (its row and id stay, for history);
- a file still being written keeps its old row, or has none yet;
- byte-identical images (same SHA-256) within the location: one stays ``ok``, the others become
  ``duplicate`` pointing at it. The one kept is the row already ``ok`` if there is one (so a
  restored copy never demotes an image that downstream assets have used), else the lowest id
  (new files get ids oldest first: the original, not the later copy).
  Identical files in *other* locations are left alone: a partition's rows depend only on its
  own folder, so materializing one location never changes another; they are only counted.
- bursts are recomputed for the whole location (``bursts.assign_bursts``) over ok rows with an
  exact capture time.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

from deer_pipeline.ingest.bursts import assign_bursts
from deer_pipeline.ingest.inspect import Inspection
from deer_pipeline.ingest.store import ImageRow

BROKEN_LINK = "broken symbolic link: its target does not exist"
_FACT_COLUMNS = (
    "width height captured_at captured_at_source camera_make camera_model camera_serial "
    "format color_mode note"
).split()


@dataclass
class Plan:
    """The rows to write and what happened to the location's files."""

    rows: list[ImageRow]
    new: int = 0
    changed: int = 0
    missing: int = 0


def _from_inspection(found: Inspection, row_id: int, key: str) -> ImageRow:
    facts = found.facts
    common = {
        "id": row_id,
        "location_key": key,
        "rel_path": found.rel_path,
        "sha256": found.sha256,
        "size": found.size,
        "mtime_ns": found.mtime_ns,
        "burst_id": None,
        "duplicate_of": None,
    }
    if facts is None:
        blank = dict.fromkeys(_FACT_COLUMNS)
        return ImageRow(
            **common,
            **blank,
            captured_at_exact=False,
            orientation=1,
            status="failed",
            error=found.error,
        )
    return ImageRow(
        **common,
        width=facts.width,
        height=facts.height,
        captured_at=facts.captured.value if facts.captured else None,
        captured_at_source=facts.captured.source if facts.captured else None,
        captured_at_exact=facts.captured.exact if facts.captured else False,
        camera_make=facts.make,
        camera_model=facts.model,
        camera_serial=facts.serial,
        orientation=facts.orientation,
        status="ok",
        error=None,
        format=facts.format,
        color_mode=facts.color_mode,
        note=facts.note,
    )


def _content(row: ImageRow) -> tuple:
    return (row.size, row.mtime_ns, row.sha256, row.error)


def _dedupe(rows: dict[str, ImageRow], was_ok: set[str]) -> None:
    groups: dict[str, list[ImageRow]] = defaultdict(list)
    for row in rows.values():
        if row.status in ("ok", "duplicate") and row.sha256:
            groups[row.sha256].append(row)
    for group in groups.values():
        keep = min(group, key=lambda r: (r.rel_path not in was_ok, r.id))
        for row in group:
            status, target = ("ok", None) if row is keep else ("duplicate", keep.id)
            rows[row.rel_path] = dataclasses.replace(row, status=status, duplicate_of=target)


def _bursts(rows: dict[str, ImageRow], gap_s: float) -> None:
    frames = [
        (r.id, r.captured_at, (r.camera_make, r.camera_model, r.camera_serial))
        for r in rows.values()
        if r.status == "ok" and r.captured_at_exact and r.captured_at is not None
    ]
    bursts = assign_bursts(frames, gap_s)
    for path, row in rows.items():
        rows[path] = dataclasses.replace(row, burst_id=bursts.get(row.id))


def plan_location(
    key: str,
    stored: dict[str, ImageRow],
    present: set[str],
    found: list[Inspection],
    new_ids: Iterator[int],
    gap_s: float,
) -> Plan:
    """Decide the location's rows after this run.

    Args:
        key: the location key.
        stored: the rows in the database now, by ``rel_path``.
        present: every ``rel_path`` on disk now (read or not, pending included).
        found: inspections of the new or changed files read now and of newly broken links
            (outcomes ``image`` or ``failed``; ``pending`` and ``vanished`` ones are ignored).
        new_ids: pre-drawn ascending ids, given to files without a row oldest first (by mtime,
            then ``rel_path``), so of identical new files the oldest is the one kept.
        gap_s: burst gap in seconds.

    Returns:
        The rows that differ from ``stored`` and the counts of new, changed and missing files.
    """
    plan = Plan(rows=[])
    rows = dict(stored)
    was_ok = {path for path, row in stored.items() if row.status == "ok"}
    for item in sorted(found, key=lambda i: (i.mtime_ns or 0, i.rel_path)):
        if item.outcome not in ("image", "failed"):
            continue
        old = stored.get(item.rel_path)
        row = _from_inspection(item, old.id if old else next(new_ids), key)
        rows[item.rel_path] = row
        if old is None:
            plan.new += 1
        elif old.status == "missing" or _content(old) != _content(row):
            plan.changed += 1
    for path, row in stored.items():
        if path not in present and row.status != "missing":
            rows[path] = dataclasses.replace(
                row, status="missing", error=None, duplicate_of=None, burst_id=None
            )
            plan.missing += 1
    _dedupe(rows, was_ok)
    _bursts(rows, gap_s)
    plan.rows = [row for path, row in sorted(rows.items()) if stored.get(path) != row]
    return plan
