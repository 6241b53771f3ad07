"""detections.monochrome: written by both write paths, NULL where it was not measured."""

import numpy as np
import pytest

from deer_pipeline.db.connect import connect
from deer_pipeline.db.inference_store import clear_stage, stage_tables, write_detections
from deer_pipeline.vision.pipeline import BatchResult


def batch(image_ids, monochrome) -> BatchResult:
    n = len(image_ids)
    boxes = np.tile(np.array([[0, 0, 10, 10]], np.float32), (n, 1))
    return BatchResult(
        image_ids=list(image_ids),
        det_image_id=np.asarray(image_ids, np.int64),
        det_index=np.zeros(n, np.int32),
        class_name=["doe"] * n,
        confidence=np.full(n, 0.9, np.float32),
        boxes=boxes,
        embeddings=None,
        failures=[],
        sizes={},
        monochrome=monochrome,
    )


@pytest.fixture
def store(clean_db):
    conn = connect(clean_db.data)
    with conn, conn.cursor() as cur:
        cur.execute("INSERT INTO locations (key, folder) VALUES ('loc', 'loc')")
        cur.execute(
            "INSERT INTO images (location_key, rel_path, status)"
            " SELECT 'loc', 'loc/' || g, 'ok' FROM generate_series(1, 3) g RETURNING id"
        )
        ids = [r[0] for r in cur.fetchall()]
        stage_tables(cur)
    yield conn, ids
    conn.close()


def stored(conn) -> list:
    with conn, conn.cursor() as cur:
        cur.execute("SELECT image_id, monochrome FROM detections ORDER BY image_id")
        return [r[1] for r in cur.fetchall()]


def write(conn, result: BatchResult) -> bool:
    with conn, conn.cursor() as cur:
        _, created = write_detections(cur, "det", result, False)
        clear_stage(cur)
    return created


def test_first_load_and_replace_write_the_flag(store):
    conn, ids = store
    assert write(conn, batch(ids, np.array([True, False, True])))  # first load: COPY
    assert stored(conn) == [True, False, True]
    assert not write(conn, batch(ids, np.array([False, False, True])))  # a re-run: upsert
    assert stored(conn) == [False, False, True]
    write(conn, batch(ids, None))
    assert stored(conn) == [None, None, None]
