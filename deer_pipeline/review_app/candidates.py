"""Which pairs of deer are worth asking about, and which sighting is a stray, in plain numpy.

No similarity floor decides what is asked: the pair model ranks every candidate. Candidates come
from two kinds of evidence, both exact (blocked matrix products over vectors held in memory):

- the nearest deer by mean direction (a fragment of an animal sits near its other fragments);
- the nearest single sightings of other deer (one deer's night sightings can sit close to
  another deer's night sightings while the two means, dominated by day, are far apart).

A stray is a part of a deer that may be another animal: one of the tracklets it was built from
(the boxes of one burst the identities joined in one go: a wrong tracklet brings a whole visit of
another animal), or its single box least like the rest of it (cosine to the mean of its other
sightings: a wrong box inside a burst). The pair model then says how likely each part is another
animal than the rest of its deer; the likeliest part of each deer is proposed.
"""

from __future__ import annotations

import numpy as np

BLOCK = 2048  # query rows per matrix product (bounds memory: BLOCK x rows float32)


def nearest_other(
    queries: np.ndarray,
    query_owner: np.ndarray,
    base: np.ndarray,
    base_owner: np.ndarray,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """For each query row, the ``k`` most similar base rows owned by another deer.

    Args:
        queries: (q, d) unit vectors.
        query_owner: (q,) the deer of each query (rows of the same deer are never returned).
        base: (n, d) unit vectors.
        base_owner: (n,) the deer of each base row (negative: a free row, never returned).
        k: neighbours per query.

    Returns:
        (indices (q, k) into ``base``, similarities (q, k)); -1 / -inf where there are fewer.
    """
    q = len(queries)
    k = max(0, min(k, len(base)))
    idx = np.full((q, k), -1, dtype=np.int64)
    sim = np.full((q, k), -np.inf, dtype=np.float32)
    if q == 0 or k == 0:
        return idx, sim
    base32 = np.asarray(base, dtype=np.float32)
    for start in range(0, q, BLOCK):
        chunk = np.asarray(queries[start : start + BLOCK], dtype=np.float32)
        sims = chunk @ base32.T
        owners = query_owner[start : start + BLOCK]
        sims[(base_owner[None, :] == owners[:, None]) | (base_owner[None, :] < 0)] = -np.inf
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        vals = np.take_along_axis(sims, top, axis=1)
        idx[start : start + len(chunk)] = np.where(np.isfinite(vals), top, -1)
        sim[start : start + len(chunk)] = vals
    return idx, sim


def leave_one_out(vectors: np.ndarray) -> np.ndarray:
    """Cosine of each row to the mean direction of the other rows (n >= 2)."""
    v = np.asarray(vectors, dtype=np.float32)
    rest = v.sum(axis=0)[None, :] - v
    norms = np.linalg.norm(rest, axis=1)
    return np.divide((v * rest).sum(axis=1), norms, out=np.zeros(len(v)), where=norms > 0)


def stray_groups(vectors: np.ndarray, tracklets: list, min_sightings: int = 3) -> list:
    """Return the parts of a deer that may be strays, as arrays of row indices.

    The parts are its tracklets (unless one tracklet is all of it; sightings a person placed
    have none) and its box least like the rest (when it has ``min_sightings`` or more).

    Args:
        vectors: (n, d) unit vectors of the deer's sightings.
        tracklets: per sighting its tracklet key (None: a sighting of its own).
        min_sightings: least sightings for a single box to be singled out.
    """
    n = len(vectors)
    if n < 2:
        return []
    groups: dict = {}
    for k, key in enumerate(tracklets):
        if key is not None:
            groups.setdefault(key, []).append(k)
    whole = len(groups) == 1 and len(groups[next(iter(groups))]) == n
    out = [np.array(g) for g in groups.values()] if groups and not whole else []
    if len(out) == 2 and len(out[0]) + len(out[1]) == n:  # one part is the other's rest
        out = [min(out, key=len)]
    if n >= min_sightings:
        single = int(np.argmin(leave_one_out(vectors)))
        if not any(len(g) == 1 and g[0] == single for g in out):
            out.append(np.array([single]))
    return out
