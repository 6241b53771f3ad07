"""Held-out figures of a re-ID model on cached worlds, named after its weaknesses.

- ``rank1``: each detection against the detections of *other* bursts (frames of one burst are
  trivially alike), the nearest one shows the same deer.
- ``rank1_day_night``: a day detection against night (infrared) detections only: the
  cross-condition figure.
- ``own_day_night`` vs ``lookalike``: per deer with day and night views, the cosine between its
  mean day and mean night vectors, against the cosine between its mean vector and the nearest
  other deer of its class in the same world; ``gap`` is their difference (median over deer) and
  ``gap_positive`` the share of deer whose own views are closer than any look-alike.
- Offline clustering: average-linkage agglomeration of detections within a world, never across
  classes or within one photo (cannot-link), stopped at a cosine threshold, scored by B-cubed.
  The threshold is calibrated on *other* worlds (:func:`calibrate`) and then applied unchanged.
"""

from __future__ import annotations

import numpy as np

from deer_pipeline.reid.metrics import bcubed
from deer_workshop.reid_projection.worlds import World

TARGET_PRECISION = 0.95
THRESHOLDS = tuple(round(float(t), 3) for t in np.arange(0.30, 0.985, 0.01))


def retrieval(world: World) -> dict:
    """Rank-1 overall and day-query vs night-gallery rank-1 (other bursts only)."""
    x = world.embeddings
    sim = x @ x.T
    other = world.bursts[:, None] != world.bursts[None, :]
    same = world.labels[:, None] == world.labels[None, :]
    out = {}
    for name, gallery in (("rank1", np.ones(len(x), bool)), ("rank1_day_night", world.night)):
        queries = ~world.night if name == "rank1_day_night" else np.ones(len(x), bool)
        valid = other & gallery[None, :]
        has_pos = (valid & same).any(1) & queries
        masked = np.where(valid, sim, -np.inf)[has_pos]
        best = masked.argmax(1)
        out[name] = float(same[has_pos, best].mean()) if has_pos.any() else float("nan")
        out[name + "_queries"] = int(has_pos.sum())
    return out


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def day_night_gap(world: World) -> dict:
    """Own day/night cosine against the nearest same-class look-alike, per deer (medians)."""
    ids = sorted(set(world.labels.tolist()))
    means = {i: _unit(world.embeddings[world.labels == i].mean(0)) for i in ids}
    cls = {i: world.classes[world.labels == i][0] for i in ids}
    own, look = [], []
    for i in ids:
        m = world.labels == i
        day, night = m & ~world.night, m & world.night
        others = [j for j in ids if j != i and cls[j] == cls[i]]
        if not day.any() or not night.any() or not others:
            continue
        day_mean = _unit(world.embeddings[day].mean(0))
        own.append(float(day_mean @ _unit(world.embeddings[night].mean(0))))
        look.append(max(float(means[i] @ means[j]) for j in others))
    own_a, look_a = np.array(own), np.array(look)
    return {
        "deer": len(own),
        "own_day_night": float(np.median(own_a)) if own else float("nan"),
        "lookalike": float(np.median(look_a)) if own else float("nan"),
        "gap": float(np.median(own_a - look_a)) if own else float("nan"),
        "gap_positive": float(np.mean(own_a > look_a)) if own else float("nan"),
    }


def merge_history(world: World) -> tuple[list[tuple[int, int]], np.ndarray]:
    """Average-linkage agglomeration of one world's detections down to any similarity.

    Cannot-link: different classes, and two detections of one photo. Cluster similarity is the
    mean pairwise cosine (Lance-Williams update); a merge inherits both sides' cannot-links.

    Returns:
        (merges as (kept cluster, absorbed cluster) in order, the similarity of each merge).
        Stopping at threshold ``t`` means applying the merges before the first one below ``t``.
    """
    x = world.embeddings.astype(np.float64)
    n = len(x)
    sim = x @ x.T
    blocked = (world.classes[:, None] != world.classes[None, :]) | (
        world.frames[:, None] == world.frames[None, :]
    )
    size = np.ones(n)
    active = np.ones(n, bool)
    score = np.where(blocked, -np.inf, sim)
    np.fill_diagonal(score, -np.inf)
    merges, sims = [], []
    lowest = THRESHOLDS[0]
    while True:
        flat = int(np.argmax(score))
        a, b = divmod(flat, n)
        s = score[a, b]
        if not np.isfinite(s) or s < lowest:
            break
        merges.append((a, b))
        sims.append(s)
        row = (size[a] * sim[a] + size[b] * sim[b]) / (size[a] + size[b])
        sim[a, :], sim[:, a] = row, row
        blocked[a, :] |= blocked[b, :]
        blocked[:, a] = blocked[a, :]
        size[a] += size[b]
        active[b] = False
        new = np.where(blocked[a] | ~active, -np.inf, sim[a])
        new[a] = -np.inf
        score[a, :], score[:, a] = new, new
        score[b, :], score[:, b] = -np.inf, -np.inf
    return merges, np.array(sims)


def cut(n: int, merges: list[tuple[int, int]], sims: np.ndarray, threshold: float) -> np.ndarray:
    """Cluster labels after applying the merges made at or above ``threshold``."""
    parent = np.arange(n)
    stop = int(np.argmax(sims < threshold)) if np.any(sims < threshold) else len(sims)
    for a, b in merges[:stop]:
        parent[b] = a

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    return np.array([root(i) for i in range(n)])


def clustering_sweep(world: World, thresholds=THRESHOLDS) -> list[dict]:
    """B-cubed precision and recall of the offline clustering at each threshold."""
    merges, sims = merge_history(world)
    rows = []
    for t in thresholds:
        pred = cut(len(world), merges, sims, t)
        p, r = bcubed(pred.tolist(), world.labels.tolist())
        rows.append(
            {
                "threshold": t,
                "precision": round(p, 4),
                "recall": round(r, 4),
                "deer_found": int(len(set(pred.tolist()))),
            }
        )
    return rows


def calibrate(sweeps: list[list[dict]], target: float = TARGET_PRECISION) -> float:
    """The lowest threshold at which every calibration world reaches ``target`` precision.

    Lower thresholds merge more (higher recall), so this is the best recall the calibration
    worlds allow; falls back to the highest threshold when none qualifies.
    """
    ok = [
        rows[0]["threshold"]
        for rows in zip(*sweeps, strict=True)
        if all(r["precision"] >= target for r in rows)
    ]
    return min(ok) if ok else sweeps[0][-1]["threshold"]


def at_threshold(rows: list[dict], threshold: float) -> dict:
    """The sweep row of one threshold."""
    return min(rows, key=lambda r: abs(r["threshold"] - threshold))


def oracle(rows: list[dict], target: float = TARGET_PRECISION) -> dict:
    """Best recall at ``target`` precision, threshold picked on this very world (optimistic)."""
    good = [r for r in rows if r["precision"] >= target]
    return max(good, key=lambda r: r["recall"]) if good else {"recall": 0.0}


def evaluate(world: World, threshold: float | None = None) -> dict:
    """All figures of one (already projected) world; clustering at ``threshold`` when given."""
    rows = clustering_sweep(world)
    out = {
        "seed": world.seed,
        "detections": len(world),
        "deer": int(len(set(world.labels.tolist()))),
        **retrieval(world),
        **day_night_gap(world),
        "oracle_recall_at_p95": oracle(rows)["recall"],
        "sweep": rows,
    }
    if threshold is not None:
        row = at_threshold(rows, threshold)
        out |= {
            "threshold": threshold,
            "precision": row["precision"],
            "recall": row["recall"],
            "deer_found": row["deer_found"],
        }
    return out
