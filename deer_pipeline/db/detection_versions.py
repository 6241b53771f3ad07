"""Which detector version's stored boxes an embeddings-only pass embeds.

A location's ``detections`` may come from our detector (versioned by its weights' hash) or from
an imported MegaDetector file (``import megadetector --model-version NAME``). When ``embeddings``
runs without ``detections`` it embeds the stored boxes of: the version the run config names; else
the configured detector's, when the location has boxes of it; else the version with the newest
boxes at the location (an import); else the configured detector's (nothing to embed yet).
"""

from __future__ import annotations

_VERSIONS = """
SELECT d.model_version FROM detections d JOIN images i ON i.id = d.image_id
 WHERE i.location_key = %s GROUP BY d.model_version ORDER BY max(d.created_at) DESC
"""


def stored_versions(cur, location_key: str) -> list[str]:
    """Detector versions with boxes at a location, the most recently written first."""
    cur.execute(_VERSIONS, (location_key,))
    return [v for (v,) in cur.fetchall()]


def version_to_embed(
    cur, location_key: str, requested: str | None, configured: str | None
) -> str | None:
    """Pick the detector version whose stored boxes to embed (see the module docstring).

    Args:
        cur: a cursor on the data database.
        location_key: the partition.
        requested: the version the run config names, or None.
        configured: the configured detector's version, or None when its weights are missing.

    Returns:
        The version, or None when nothing is named, the weights are missing and nothing is stored.
    """
    if requested:
        return requested
    stored = stored_versions(cur, location_key)
    if configured in stored or not stored:
        return configured
    return stored[0]
