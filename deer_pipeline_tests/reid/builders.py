"""Hand-built identity scenarios: locations, images, detections and embeddings written directly."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from deer_pipeline.db.columns import copy_columns
from deer_pipeline.db.copy import copy_rows
from deer_pipeline.reid.vectors import normalise_rows

DET_VERSION = "det-test"
EMB_VERSION = "emb-test"
DIM = 2048


def animal(seed: int) -> np.ndarray:
    """A unit 'identity' vector; animals with different seeds are nearly orthogonal."""
    return normalise_rows(np.random.default_rng(seed).normal(size=(1, DIM)))[0]


def view(identity: np.ndarray, noise: float, seed: int) -> np.ndarray:
    """One noisy observation of an identity vector (cosine about 1 / sqrt(1 + noise^2))."""
    rng = np.random.default_rng(seed)
    return normalise_rows((identity + noise * normalise_rows(rng.normal(size=(1, DIM)))[0])[None])[
        0
    ]


@dataclass
class Scene:
    """Collects images and detections, then writes them in one go."""

    location: str
    start: datetime = datetime(2024, 9, 1, 6, 0, 0)
    images: list[dict] = field(default_factory=list)
    detections: list[dict] = field(default_factory=list)

    def burst(
        self,
        frames: list[list[tuple[str, tuple, np.ndarray]]],
        minutes: float = 0,
        width: int = 1280,
        height: int = 720,
    ) -> None:
        """Add a burst: one entry per frame, each a list of (class, box, embedding) or
        (class, box, embedding, {"confidence": c, "scores": {class: score}, "monochrome": m})."""
        t0 = self.start + timedelta(minutes=minutes)
        first = len(self.images)
        for k, dets in enumerate(frames):
            self.images.append(
                {
                    "rel_path": f"{self.location}/B{first:04d}_{k:02d}.JPG",
                    "captured_at": t0 + timedelta(seconds=2 * k),
                    "burst": first,
                    "width": width,
                    "height": height,
                }
            )
            for j, (cls, box, emb, *extra) in enumerate(dets):
                more = extra[0] if extra else {}
                self.detections.append(
                    {
                        "image": len(self.images) - 1,
                        "index": j,
                        "class": cls,
                        "box": box,
                        "embedding": emb,
                        "confidence": more.get("confidence", 0.9),
                        "scores": more.get("scores"),
                        "monochrome": more.get("monochrome"),
                    }
                )

    def write(self, conn) -> list[int]:
        """Insert everything; return detection ids in the order they were added."""
        with conn.cursor() as cur:
            cur.execute(
                "INSERT INTO locations (key, folder) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (self.location, self.location),
            )
            image_ids = []
            for im in self.images:
                cur.execute(
                    "INSERT INTO images (location_key, rel_path, width, height, captured_at,"
                    " status) VALUES (%s, %s, %s, %s, %s, 'ok') RETURNING id",
                    (self.location, im["rel_path"], im["width"], im["height"], im["captured_at"]),
                )
                image_ids.append(cur.fetchone()[0])
            for im, image_id in zip(self.images, image_ids, strict=True):
                cur.execute(
                    "UPDATE images SET burst_id = %s WHERE id = %s",
                    (image_ids[im["burst"]], image_id),
                )
            det_ids = []
            for d in self.detections:
                cur.execute(
                    "INSERT INTO detections (image_id, model_version, det_index, class_name,"
                    " confidence, x1, y1, x2, y2, class_scores, monochrome)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                    (
                        image_ids[d["image"]],
                        DET_VERSION,
                        d["index"],
                        d["class"],
                        d["confidence"],
                        *d["box"],
                        json.dumps(d["scores"]) if d["scores"] else None,
                        d["monochrome"],
                    ),
                )
                det_ids.append(cur.fetchone()[0])
            if det_ids:
                copy_rows(
                    cur,
                    "embeddings",
                    copy_columns("embeddings"),
                    {
                        "detection_id": np.array(det_ids),
                        "model_version": [EMB_VERSION] * len(det_ids),
                        "embedding": np.stack([d["embedding"] for d in self.detections]),
                    },
                )
        conn.commit()
        return det_ids


def walk(x0: float, step: float, n: int, y: float = 300, w: float = 200, h: float = 150):
    """Boxes of an animal walking right by ``step`` pixels per frame."""
    return [(x0 + k * step, y, x0 + k * step + w, y + h) for k in range(n)]


def sightings(conn) -> dict[int, tuple[int, str]]:
    """detection id -> (deer id, method)."""
    with conn.cursor() as cur:
        cur.execute("SELECT detection_id, deer_id, method FROM sightings")
        return {r[0]: (r[1], r[2]) for r in cur.fetchall()}
