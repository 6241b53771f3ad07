"""Group the frames of a location into bursts: one trigger's quick sequence of shots.

A trail camera fires 1-10 frames per trigger, a second or so apart; consecutive frames (by
``captured_at``) no more than ``gap_s`` apart form one burst, and the burst's id is the id of its
first frame. Frames from different cameras (make, model, serial) at the same location are never
chained: two cameras firing within seconds of each other saw two scenes. Recomputing all bursts
of a location is cheap (one sort), so every ingest does it, and late-arriving frames that bridge
two bursts merge them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable
from datetime import datetime, timedelta

DEFAULT_GAP_S = 5.0


def assign_bursts(
    frames: Iterable[tuple[int, datetime, Hashable]], gap_s: float = DEFAULT_GAP_S
) -> dict[int, int]:
    """Return each frame's burst id.

    Args:
        frames: ``(id, captured_at, camera)`` per frame; ``camera`` is any hashable identity
            (e.g. ``(make, model, serial)``), equal for frames of one camera.
        gap_s: the largest gap, in seconds, between consecutive frames of one burst.

    Returns:
        ``{id: burst_id}``, where ``burst_id`` is the id of the burst's earliest frame (ties by
        id). A frame alone is its own burst.
    """
    gap = timedelta(seconds=gap_s)
    by_camera: dict[Hashable, list[tuple[datetime, int]]] = defaultdict(list)
    for frame_id, captured_at, camera in frames:
        by_camera[camera].append((captured_at, frame_id))
    bursts: dict[int, int] = {}
    for shots in by_camera.values():
        shots.sort()
        first = previous = None
        for captured_at, frame_id in shots:
            if previous is None or captured_at - previous > gap:
                first = frame_id
            bursts[frame_id] = first
            previous = captured_at
    return bursts
