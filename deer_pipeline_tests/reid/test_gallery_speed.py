"""Matching against a gallery of 10,000 deer through the HNSW index: still right (the time is
printed, not asserted: speeds belong in benchmarks).

The gallery serves a class correction, which re-identifies one detection at once (identity runs
cluster instead, see ``test_global_identities``).
"""

from __future__ import annotations

import time

import numpy as np

from deer_pipeline.db.connect import connect
from deer_pipeline.db.copy import copy_rows
from deer_pipeline.db.indexes import register_model_version
from deer_pipeline.reid.matching import Gallery, MatchConfig
from deer_pipeline.reid.tracklets import Detection, Tracklet
from deer_pipeline.reid.vectors import normalise_rows
from deer_pipeline_tests.reid.builders import DIM, EMB_VERSION, Scene, view

GALLERY = 10_000
QUERIES = 60


def _gallery_vectors(rng: np.random.Generator) -> np.ndarray:
    """Embedding-like vectors: a low-rank structure plus noise (trained features are not
    isotropic), all non-negative like pooled ReLU features."""
    basis = np.abs(rng.normal(size=(96, DIM)))
    mix = np.abs(rng.normal(size=(GALLERY, 96))) ** 3
    return normalise_rows(mix @ basis + 0.5 * np.abs(rng.normal(size=(GALLERY, DIM))))


def test_match_over_10k_gallery_finds_the_right_deer(clean_db):
    rng = np.random.default_rng(0)
    vectors = _gallery_vectors(rng)
    sexes = np.array(["doe", "buck", "fawn"])[rng.integers(0, 3, GALLERY)]
    conn = connect(clean_db.data)
    with conn.cursor() as cur:
        copy_rows(
            cur,
            "deer",
            [
                ("sex", "text"),
                ("n_sightings", "int4"),
                ("model_version", "text"),
                ("embedding", "halfvec"),
                ("embedding_sum", "vector"),
                ("embedding_count", "int4"),
            ],
            {
                "sex": sexes.tolist(),
                "n_sightings": np.ones(GALLERY, np.int32),
                "model_version": [EMB_VERSION] * GALLERY,
                "embedding": vectors,
                "embedding_sum": vectors,
                "embedding_count": np.ones(GALLERY, np.int32),
            },
        )
        cur.execute("SET maintenance_work_mem = '256MB'")
        t0 = time.perf_counter()
        register_model_version(cur, EMB_VERSION, DIM)  # builds the version's gallery index
        build_s = time.perf_counter() - t0
        cur.execute("ANALYZE deer")
        cur.execute("SELECT min(id) FROM deer")
        first_id = cur.fetchone()[0]
    conn.commit()
    # Each query is a two-frame tracklet of a known gallery deer, seen with noise.
    picks = rng.choice(GALLERY, QUERIES, replace=False)
    scene = Scene("L1")
    box = (100, 100, 300, 250)
    for k, p in enumerate(picks):
        scene.burst(
            [[(sexes[p], box, view(vectors[p], 0.3, 2 * k + j))] for j in range(2)], minutes=30 * k
        )
    ids = scene.write(conn)
    tracklets = []
    for k, p in enumerate(picks):
        members = [
            Detection(ids[2 * k + j], 0, k, j, None, str(sexes[p]), box, d["embedding"])
            for j, d in enumerate(scene.detections[2 * k : 2 * k + 2])
        ]
        mean = normalise_rows(np.sum([m.embedding for m in members], 0)[None])[0]
        tracklets.append(Tracklet(members, mean))
    with conn.cursor() as cur:
        gallery = Gallery(cur, EMB_VERSION, MatchConfig(threshold=0.8))
        t0 = time.perf_counter()
        results = [gallery.assign(t) for t in tracklets]
        ms_per_tracklet = 1000 * (time.perf_counter() - t0) / QUERIES
    conn.rollback()
    right = sum(r.deer_id == first_id + int(p) for r, p in zip(results, picks, strict=True))
    conn.close()
    print(
        f"\n10k gallery: index build {build_s:.1f} s, {ms_per_tracklet:.2f} ms/tracklet, "
        f"{right}/{QUERIES} matched to the right deer"
    )
    assert right >= 0.95 * QUERIES
