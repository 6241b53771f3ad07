"""Benchmark of identity runs at scale on synthetic vectors (a measurement, not a test).

Writes a synthetic herd straight into the database (locations, bursts of 3-6 frames with one to
three animals, class evidence with detector-like mistakes, noisy views of each animal's identity
vector), builds the ``embeddings`` HNSW index, then identifies the locations one after another
as the asset does, and prints per-location and total seconds, the peak memory of this process
and the B-cubed figures against the known individuals. Run it against an empty database of its
own:

    DEER_HOME=/tmp/deer-bench python -m deer_workshop.identity_benchmark --detections 50000
    DEER_HOME=/tmp/b5k python -m deer_workshop.identity_benchmark --detections 8500 --locations 1
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from datetime import datetime, timedelta

import numpy as np

from deer_pipeline.db.columns import copy_columns
from deer_pipeline.db.connect import connect, ensure_ready
from deer_pipeline.db.copy import copy_rows
from deer_pipeline.reid.identify import identify_location
from deer_pipeline.reid.matching import MatchConfig
from deer_pipeline.reid.metrics import bcubed
from deer_pipeline.reid.vectors import normalise_rows
from deer_pipeline.vocabulary import DEER_CLASSES

DIM = 2048
CLASSES = DEER_CLASSES  # the one vocabulary (deer_pipeline.vocabulary)


def synthesize(n_detections: int, n_locations: int, n_deer: int, noise: float, seed: int):
    """Return images and detections (with truth) of a synthetic herd, about ``n_detections``."""
    rng = np.random.default_rng(seed)
    identity = normalise_rows(rng.standard_normal(size=(n_deer, DIM), dtype=np.float32))
    sex = rng.choice(3, n_deer, p=[0.5, 0.2, 0.3])
    home = rng.integers(0, n_locations, n_deer)
    images, dets = [], []
    start = datetime(2024, 9, 1)
    per_location = n_detections // n_locations
    for loc in range(n_locations):
        local = np.flatnonzero(home == loc)
        roaming = np.flatnonzero(home != loc)
        t = start
        count = 0
        while count < per_location:
            t += timedelta(minutes=float(rng.exponential(45.0)))
            k = int(rng.integers(1, 4))
            roam = rng.random() >= 0.8 and len(roaming) >= k
            pool = roaming if roam or len(local) < k else local
            who = rng.choice(pool, k, replace=False)
            frames = int(rng.integers(3, 7))
            burst = len(images)
            for f in range(frames):
                images.append((loc, burst, t + timedelta(seconds=2 * f)))
                for j, w in enumerate(who):
                    true = int(sex[w])
                    called = true if rng.random() > 0.15 else int(rng.integers(0, 3))
                    x = 100 + 400 * j + 20 * f
                    dets.append((len(images) - 1, j, CLASSES[called], x, int(w)))
                    count += 1
    views = np.empty((len(dets), DIM), dtype=np.float32)
    who = np.array([d[4] for d in dets])
    for start in range(0, len(dets), 4096):  # in chunks: float32, never the whole float64 noise
        part = who[start : start + 4096]
        noisy = rng.standard_normal(size=(len(part), DIM), dtype=np.float32)
        views[start : start + 4096] = normalise_rows(identity[part] + noise * normalise_rows(noisy))
    return images, dets, views


def write(conn, images, dets, views) -> None:
    """Write the herd as locations, images, detections and embeddings (index rebuilt after)."""
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM images")
        if cur.fetchone()[0]:
            raise SystemExit("the benchmark needs an empty database (set DEER_HOME to a new dir)")
        locs = sorted({im[0] for im in images})
        for loc in locs:
            cur.execute("INSERT INTO locations (key, folder) VALUES (%s, %s)", (f"L{loc}",) * 2)
        n_img = len(images)
        copy_rows(
            cur,
            "images",
            copy_columns(
                "images",
                [
                    "id",
                    "location_key",
                    "rel_path",
                    "width",
                    "height",
                    "captured_at",
                    "status",
                    "burst_id",
                ],
            ),
            {
                "id": np.arange(1, n_img + 1),
                "location_key": [f"L{im[0]}" for im in images],
                "rel_path": [f"L{im[0]}/{i:07d}.jpg" for i, im in enumerate(images)],
                "width": np.full(n_img, 1920),
                "height": np.full(n_img, 1080),
                "captured_at": [im[2] for im in images],
                "status": ["ok"] * n_img,
                "burst_id": np.array([im[1] + 1 for im in images]),
            },
        )
        n = len(dets)
        ids = np.arange(1, n + 1)
        copy_rows(
            cur,
            "detections",
            copy_columns(
                "detections",
                [
                    "id",
                    "image_id",
                    "model_version",
                    "det_index",
                    "class_name",
                    "confidence",
                    "x1",
                    "y1",
                    "x2",
                    "y2",
                ],
            ),
            {
                "id": ids,
                "image_id": np.array([d[0] + 1 for d in dets]),
                "model_version": ["bench-det"] * n,
                "det_index": np.array([d[1] for d in dets]),
                "class_name": [d[2] for d in dets],
                "confidence": np.full(n, 0.8),
                "x1": np.array([d[3] for d in dets], dtype=float),
                "y1": np.full(n, 300.0),
                "x2": np.array([d[3] + 250 for d in dets], dtype=float),
                "y2": np.full(n, 500.0),
            },
        )
        cur.execute("DROP INDEX IF EXISTS embeddings_hnsw")
        copy_rows(
            cur,
            "embeddings",
            copy_columns("embeddings", ["detection_id", "model_version", "embedding"]),
            {"detection_id": ids, "model_version": ["bench-emb"] * n, "embedding": views},
        )
        cur.execute("SET maintenance_work_mem = '1GB'")
        cur.execute(
            "CREATE INDEX embeddings_hnsw ON embeddings USING hnsw (embedding halfvec_cosine_ops)"
        )
        cur.execute("ANALYZE")
    conn.commit()


def main(argv: list[str] | None = None) -> int:
    """Generate, load and identify every location in turn; print JSON lines and a summary."""
    parser = argparse.ArgumentParser(prog="python -m deer_workshop.identity_benchmark")
    parser.add_argument("--detections", type=int, default=50_000)
    parser.add_argument("--locations", type=int, default=6)
    parser.add_argument("--deer", type=int, default=0, help="default: detections / 150")
    parser.add_argument("--noise", type=float, default=0.4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threshold", type=float, default=MatchConfig().threshold)
    args = parser.parse_args(argv)
    n_deer = args.deer or max(args.detections // 150, 5)
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    images, dets, views = synthesize(args.detections, args.locations, n_deer, args.noise, args.seed)
    conn = connect(ensure_ready().data)
    write(conn, images, dets, views)
    del views
    load_s = time.perf_counter() - t0
    match = MatchConfig(threshold=args.threshold)
    total = 0.0
    cpu1 = time.process_time()
    for loc in range(args.locations):
        report = identify_location(conn, f"L{loc}", match)
        total += report.seconds
        print(
            json.dumps(
                {
                    "location": f"L{loc}",
                    "detections": report.detections,
                    "tracklets": report.tracklets,
                    "deer_considered": report.deer_considered,
                    "seconds": round(report.seconds, 2),
                    "load_s": round(report.load_seconds, 2),
                    "candidates_s": round(report.candidate_seconds, 2),
                    "cluster_s": round(report.cluster_seconds, 2),
                    "write_s": round(report.write_seconds, 2),
                }
            ),
            flush=True,
        )
    with conn.cursor() as cur:
        cur.execute("SELECT detection_id, deer_id FROM sightings ORDER BY detection_id")
        rows = cur.fetchall()
    conn.close()
    precision, recall = bcubed([r[1] for r in rows], [dets[r[0] - 1][4] for r in rows])
    print(
        json.dumps(
            {
                "detections": len(dets),
                "locations": args.locations,
                "true_deer": n_deer,
                "deer_found": len({r[1] for r in rows}),
                "bcubed_precision": round(precision, 4),
                "bcubed_recall": round(recall, 4),
                "identify_seconds": round(total, 1),
                "identify_cpu_seconds_python": round(time.process_time() - cpu1, 1),
                "generate_and_load_seconds": round(load_s, 1),
                "generate_and_load_cpu_seconds_python": round(cpu1 - cpu0, 1),
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
