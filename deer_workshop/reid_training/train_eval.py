"""Judging a re-ID backbone on a held-out synthetic world, as the pipeline would use it.

Embeddings come from the production ``Embedder`` (same crop geometry, resize and normalisation)
on ground-truth boxes of a world with a seed never used in training. Two views are reported:
retrieval (rank-1 and mAP, each detection against the detections of *other* bursts, since
frames of one burst are trivially alike) and an offline version of the identity step (one
tracklet per burst and individual, matched in time order against running-mean gallery vectors
of the same class, blocked within a burst), scored with B-cubed over a sweep of similarity
thresholds. The threshold chosen here is the one the pipeline then uses.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deer_pipeline.reid.metrics import bcubed
from deer_workshop.reid_training.train_data import keep_box

TARGET_PRECISION = 0.95
THRESHOLDS = tuple(round(t, 3) for t in np.arange(0.40, 0.985, 0.02))


@dataclass
class EvalSet:
    """Embedded ground-truth boxes of one world."""

    embeddings: np.ndarray
    labels: np.ndarray  # individual ids (str)
    classes: np.ndarray  # class names (str)
    bursts: np.ndarray  # burst keys (str)
    times: np.ndarray  # seconds


def embed_world(
    root: Path,
    weights: str,
    device: str,
    input_size: int = 224,
    threads: int = 8,
    batch_images: int = 32,
) -> EvalSet:
    """Embed every usable ground-truth box of a generated world with the production embedder."""
    from deer_pipeline.vision.decode import decode_file
    from deer_pipeline.vision.embedder import Embedder, EmbedderConfig

    truth = json.loads((root / "ground_truth.json").read_text(encoding="utf-8"))
    entries = [(e, [b for b in e["boxes"] if keep_box(b)]) for e in truth["images"]]
    entries = [(e, boxes) for e, boxes in entries if boxes]
    embedder = Embedder(EmbedderConfig(weights=weights, device=device, input_size=input_size))
    out, meta = [], []
    with ThreadPoolExecutor(threads) as pool:
        for start in range(0, len(entries), batch_images):
            chunk = entries[start : start + batch_images]
            images = list(pool.map(lambda item: decode_file(root / item[0]["file"]), chunk))
            items = [
                (im, np.array([b["bbox"] for b in boxes], np.float64))
                for im, (_, boxes) in zip(images, chunk, strict=True)
            ]
            out.append(embedder.embed(items))
            for e, boxes in chunk:
                t = np.datetime64(e["captured_at"]) - np.datetime64("2024-01-01T00:00:00")
                meta += [
                    (b["individual_id"], b["class"], e["burst"], float(t / np.timedelta64(1, "s")))
                    for b in boxes
                ]
    labels, classes, bursts, times = (np.array(col) for col in zip(*meta, strict=True))
    return EvalSet(np.concatenate(out), labels, classes, bursts, times.astype(np.float64))


def retrieval(data: EvalSet) -> dict:
    """Rank-1 and mAP of each detection against detections of other bursts."""
    emb = data.embeddings.astype(np.float32)
    sim = emb @ emb.T
    rank1, aps = [], []
    for i in range(len(emb)):
        valid = data.bursts != data.bursts[i]
        positives = valid & (data.labels == data.labels[i])
        if not positives.any():
            continue
        order = np.argsort(-np.where(valid, sim[i], -np.inf))[: int(valid.sum())]
        hits = positives[order]
        rank1.append(bool(hits[0]))
        ranks = np.flatnonzero(hits) + 1
        aps.append(float(np.mean(np.arange(1, len(ranks) + 1) / ranks)))
    return {
        "queries": len(aps),
        "rank1": float(np.mean(rank1)) if rank1 else 0.0,
        "mAP": float(np.mean(aps)) if aps else 0.0,
    }


def cluster(data: EvalSet, threshold: float) -> np.ndarray:
    """Offline identity step: return a predicted deer index per detection."""
    keys = {}
    for i, key in enumerate(zip(data.bursts, data.labels, strict=True)):
        keys.setdefault(key, []).append(i)
    tracklets = sorted(keys.values(), key=lambda m: (data.times[m].min(), m[0]))
    sums: list[np.ndarray] = []
    cls: list[str] = []
    bursts: list[set] = []
    pred = np.zeros(len(data.labels), np.int64)
    for members in tracklets:
        vec = data.embeddings[members].sum(0)
        query = vec / (np.linalg.norm(vec) or 1.0)
        burst, c = data.bursts[members[0]], data.classes[members[0]]
        best = -1
        if sums:
            gallery = np.stack(sums)
            sims = gallery @ query / np.maximum(np.linalg.norm(gallery, axis=1), 1e-9)
            for j in np.argsort(-sims):
                if sims[j] < threshold:
                    break
                if cls[j] == c and burst not in bursts[j]:
                    best = int(j)
                    break
        if best < 0:
            sums.append(vec.copy())
            cls.append(c)
            bursts.append({burst})
            best = len(sums) - 1
        else:
            sums[best] += vec
            bursts[best].add(burst)
        pred[members] = best
    return pred


def clustering_sweep(data: EvalSet, thresholds=THRESHOLDS) -> dict:
    """B-cubed of the offline identity step per threshold, and the threshold to use.

    The chosen threshold has the best recall among those reaching ``TARGET_PRECISION``
    (the best F1 if none does).
    """
    rows = []
    for t in thresholds:
        pred = cluster(data, t)
        p, r = bcubed(pred.tolist(), data.labels.tolist())
        rows.append(
            {
                "threshold": t,
                "precision": round(p, 4),
                "recall": round(r, 4),
                "f1": round(2 * p * r / (p + r) if p + r else 0.0, 4),
                "deer_found": int(pred.max() + 1) if len(pred) else 0,
            }
        )
    good = [r for r in rows if r["precision"] >= TARGET_PRECISION]
    best = (
        max(good, key=lambda r: (r["recall"], -r["threshold"]))
        if good
        else max(rows, key=lambda r: r["f1"])
    )
    return {"deer_true": int(len(set(data.labels.tolist()))), "sweep": rows, "chosen": best}
