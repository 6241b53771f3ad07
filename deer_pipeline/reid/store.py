"""Keeping the ``deer`` table consistent with ``sightings``: one lock, gallery vectors, statistics.

Every writer of identities (the ``deer_identities`` asset and the review commands) takes the same
transaction-scoped advisory lock, so two locations identified at once cannot both found a deer for
one animal, and a review action never interleaves with a run. After sightings change, the touched
deer get their gallery vector (normalised mean of their sightings' embeddings), their counts and
first/last seen recomputed from the sightings that remain, and deer left with none are deleted.
"""

from __future__ import annotations

from collections.abc import Collection

IDENTITY_LOCK = 0x6465657269  # "deeri": serialises every change to deer and sightings

_RECOMPUTE_GALLERY = """
UPDATE deer d
   SET embedding_sum = a.total,
       embedding_count = a.n,
       embedding = l2_normalize(a.total)::halfvec,
       model_version = a.model_version
  FROM (SELECT s.deer_id, e.model_version, sum(e.embedding::vector) AS total, count(*) AS n
          FROM sightings s
          JOIN deer dd ON dd.id = s.deer_id
          JOIN embeddings e ON e.detection_id = s.detection_id
                           AND e.model_version = COALESCE(%(mv)s, dd.model_version)
         WHERE s.deer_id = ANY(%(ids)s)
         GROUP BY s.deer_id, e.model_version) a
 WHERE d.id = a.deer_id
"""

_REFRESH_STATS = """
UPDATE deer d
   SET n_sightings = a.n, first_seen = a.first_seen, last_seen = a.last_seen
  FROM (SELECT s.deer_id, count(*) AS n, min(i.captured_at) AS first_seen,
               max(i.captured_at) AS last_seen
          FROM sightings s
          JOIN detections x ON x.id = s.detection_id
          JOIN images i ON i.id = x.image_id
         WHERE s.deer_id = ANY(%(ids)s)
         GROUP BY s.deer_id) a
 WHERE d.id = a.deer_id
"""

_DELETE_EMPTY = """
DELETE FROM deer d
 WHERE d.id = ANY(%(ids)s)
   AND NOT EXISTS (SELECT 1 FROM sightings s WHERE s.deer_id = d.id)
RETURNING d.id
"""


def lock_identities(cur, timeout_s: float | None = None) -> None:
    """Take the identity lock for the rest of the cursor's transaction (waits for holders).

    Args:
        cur: a cursor inside the caller's transaction.
        timeout_s: wait at most this long (PostgreSQL ``lock_timeout``, for this transaction),
            then fail with ``psycopg2.errors.LockNotAvailable``; None waits as long as it takes.
    """
    if timeout_s is not None:
        cur.execute("SELECT set_config('lock_timeout', %s, true)", (f"{int(timeout_s * 1000)}ms",))
    cur.execute("SELECT pg_advisory_xact_lock(%s)", (IDENTITY_LOCK,))
    if timeout_s is not None:
        cur.execute("SELECT set_config('lock_timeout', '0', true)")


def recompute_gallery(cur, deer_ids: Collection[int], model_version: str | None = None) -> None:
    """Recompute the gallery vectors of ``deer_ids`` from their sightings' embeddings.

    Args:
        cur: a cursor inside the caller's transaction.
        deer_ids: the deer to recompute.
        model_version: the embedding model to use (and record); None keeps each deer's own.
    """
    if deer_ids:
        cur.execute(_RECOMPUTE_GALLERY, {"ids": sorted(deer_ids), "mv": model_version})


def refresh_deer(cur, deer_ids: Collection[int]) -> set[int]:
    """Recompute n_sightings, first_seen and last_seen; delete deer left without sightings.

    Args:
        cur: a cursor inside the caller's transaction.
        deer_ids: the deer whose sightings changed.

    Returns:
        The ids of the deer deleted.
    """
    if not deer_ids:
        return set()
    ids = sorted(deer_ids)
    cur.execute(_REFRESH_STATS, {"ids": ids})
    cur.execute(_DELETE_EMPTY, {"ids": ids})
    return {row[0] for row in cur.fetchall()}


def settle(cur, deer_ids: Collection[int], model_version: str | None = None) -> set[int]:
    """Recompute gallery vectors and statistics of changed deer; delete the empty ones.

    Returns:
        The ids of the deer deleted.
    """
    recompute_gallery(cur, deer_ids, model_version)
    return refresh_deer(cur, deer_ids)
