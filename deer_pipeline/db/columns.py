"""The binary-COPY type of every column the project bulk-writes: one registry for all writers.

Binary ``COPY`` needs each column's wire type (``db/copy.py``). The ingest store, the inference
write path, the MegaDetector import, the load scripts and the workshop's benchmarks all take their
column lists from here, so a column added by a migration is declared once (and a test checks the
registry against the migrated schema).
"""

from __future__ import annotations

from collections.abc import Iterable

COPY_TYPES: dict[str, dict[str, str]] = {
    "images": {
        "id": "int8",
        "location_key": "text",
        "rel_path": "text",
        "sha256": "text",
        "bytes": "int8",
        "mtime_ns": "int8",
        "width": "int4",
        "height": "int4",
        "captured_at": "timestamp",
        "captured_at_source": "text",
        "captured_at_exact": "bool",
        "camera_make": "text",
        "camera_model": "text",
        "camera_serial": "text",
        "orientation": "int2",
        "burst_id": "int8",
        "status": "text",
        "error": "text",
        "duplicate_of": "int8",
        "format": "text",
        "color_mode": "text",
        "note": "text",
    },
    "detections": {
        "id": "int8",
        "image_id": "int8",
        "model_version": "text",
        "det_index": "int4",
        "class_name": "text",
        "confidence": "float4",
        "x1": "float4",
        "y1": "float4",
        "x2": "float4",
        "y2": "float4",
        "class_scores": "jsonb",
        "monochrome": "bool",
    },
    "embeddings": {"detection_id": "int8", "model_version": "text", "embedding": "halfvec"},
    "deer": {
        "id": "int8",
        "sex": "text",
        "model_version": "text",
        "embedding_sum": "vector",
        "embedding_count": "int4",
        "embedding": "halfvec",
        "first_seen": "timestamp",
        "last_seen": "timestamp",
        "n_sightings": "int4",
    },
    "sightings": {
        "detection_id": "int8",
        "deer_id": "int8",
        "similarity": "float4",
        "method": "text",
        "tracklet_key": "text",
    },
}


def copy_columns(table: str, names: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """Return ``[(column, COPY type), ...]`` of ``table`` for ``names`` (default: all, in order).

    Raises:
        KeyError: the table or a column is not in the registry.
    """
    types = COPY_TYPES[table]
    return [(name, types[name]) for name in (types if names is None else names)]
