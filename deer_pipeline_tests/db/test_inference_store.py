"""The shared write path: first-load COPY, replace upsert, and the fallback between them."""

import numpy as np
import pytest

from deer_pipeline.db import inference_store
from deer_pipeline.db.connect import connect
from deer_pipeline.db.inference_store import stage_tables, write_all
from deer_pipeline.vision.pipeline import BatchResult


class _Embedder:
    model_version = "emb-test"


def _batch(image_ids, boxes_per_image, seed, shift=0.0, scores=True):
    """A batch with ``boxes_per_image[i]`` boxes on ``image_ids[i]`` and random unit vectors.

    Each box has random per-class scores whose argmax is its class (none with ``scores=False``).
    """
    counts = np.asarray(boxes_per_image)
    det_image = np.repeat(np.asarray(image_ids, np.int64), counts)
    det_index = np.concatenate([np.arange(c) for c in counts]).astype(np.int32)
    n = len(det_image)
    vec = np.random.default_rng(seed).normal(size=(n, 2048)).astype(np.float32)
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)
    x1 = np.arange(n, dtype=np.float32) * 10 + shift
    boxes = np.stack([x1, x1, x1 + 5, x1 + 5], 1)
    raw = np.round(np.random.default_rng(seed + 100).uniform(0, 1, (n, 3)), 4)
    class_scores = [dict(zip(("doe", "fawn", "buck"), map(float, r), strict=True)) for r in raw]
    return BatchResult(
        image_ids=list(image_ids),
        det_image_id=det_image,
        det_index=det_index,
        class_name=[max(c, key=c.get) for c in class_scores],
        confidence=raw.max(axis=1).astype(np.float32),
        boxes=boxes,
        embeddings=vec.astype(np.float16),
        failures=[],
        sizes={},
        class_scores=class_scores if scores else None,
    )


@pytest.fixture
def store(clean_db):
    conn = connect(clean_db.data)
    with conn, conn.cursor() as cur:
        cur.execute("INSERT INTO locations (key, folder) VALUES ('loc', 'loc')")
        cur.execute(
            "INSERT INTO images (location_key, rel_path, status)"
            " SELECT 'loc', 'loc/' || g, 'ok' FROM generate_series(1, 6) g RETURNING id"
        )
        ids = [r[0] for r in cur.fetchall()]
        stage_tables(cur)
    yield conn, ids
    conn.close()


def _stored(conn):
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT d.id, d.image_id, d.det_index, d.x1, e.embedding::vector::real[],"
            " d.class_name, d.confidence, d.class_scores"
            " FROM detections d LEFT JOIN embeddings e ON e.detection_id = d.id ORDER BY d.id"
        )
        return cur.fetchall()


def _check(rows, batches, detections=True):
    """Stored rows hold exactly the batches' vectors and (``detections``) boxes and classes."""
    want = {}
    for b in batches:
        for k in range(len(b.boxes)):
            scores = b.class_scores[k] if b.class_scores else None
            want[(int(b.det_image_id[k]), int(b.det_index[k]))] = (
                b.boxes[k, 0],
                b.embeddings[k],
                b.class_name[k],
                b.confidence[k],
                scores,
            )
    assert len(rows) == len(want)
    for _, image_id, det_index, x1, vec, name, conf, scores in rows:
        x1_want, vec_want, name_want, conf_want, scores_want = want[(image_id, det_index)]
        assert x1 == pytest.approx(float(x1_want))
        np.testing.assert_array_equal(np.asarray(vec, np.float16), vec_want)
        if not detections:
            continue
        assert (name, conf) == (name_want, pytest.approx(float(conf_want)))
        assert scores == scores_want  # jsonb round trip: the same floats, or NULL
        if scores is not None:  # sum-sensible: each in [0, 1], the stored class is the argmax
            assert all(0 <= v <= 1 for v in scores.values())
            assert max(scores.values()) == pytest.approx(float(conf_want))
            assert max(scores, key=scores.get) == name


def test_first_load_then_replace_keeps_ids_and_drops_vanished_boxes(store):
    conn, ids = store
    first = [_batch(ids[:3], [2, 0, 1], seed=1), _batch(ids[3:], [1, 3, 1], seed=2)]
    _, rows = write_all(conn, iter(first), "det-v1", True, _Embedder, {})
    assert rows == {"detections": 8, "embeddings": 8}
    loaded = _stored(conn)
    _check(loaded, first)
    assert [r[0] for r in loaded] == list(range(loaded[0][0], loaded[0][0] + 8))

    # A re-run: image 4 now has one box fewer, the boxes moved, the vectors changed.
    again = [_batch(ids[:3], [2, 0, 1], seed=3, shift=1), _batch(ids[3:], [1, 2, 1], seed=4)]
    _, rows = write_all(conn, iter(again), "det-v1", True, _Embedder, {})
    assert rows == {"detections": 7, "embeddings": 7}
    replaced = _stored(conn)
    _check(replaced, again)
    kept = {(r[1], r[2]): r[0] for r in loaded}
    assert all(kept[(r[1], r[2])] == r[0] for r in replaced)  # detection ids survive


def test_a_concurrent_first_load_falls_back_to_replace(store, monkeypatch):
    conn, ids = store
    first = [_batch(ids, [1, 2, 0, 1, 1, 1], seed=5)]
    write_all(conn, iter(first), "det-v1", True, _Embedder, {})
    loaded = _stored(conn)

    # As if another run had loaded the same images after this batch checked the table: the
    # check says "nothing stored", the COPY meets the other run's rows.
    def always_fresh(cur, images, model_version, n):
        cur.execute(
            "SELECT ARRAY(SELECT nextval(pg_get_serial_sequence('detections', 'id'))"
            " FROM generate_series(1, %s))",
            (n,),
        )
        return np.asarray(cur.fetchone()[0], np.int64)

    monkeypatch.setattr(inference_store, "first_load_ids", always_fresh)
    again = [_batch(ids, [1, 2, 0, 1, 1, 1], seed=6, shift=2)]
    _, rows = write_all(conn, iter(again), "det-v1", True, _Embedder, {})
    assert rows == {"detections": 6, "embeddings": 6}
    replaced = _stored(conn)
    _check(replaced, again)
    assert [r[0] for r in replaced] == [r[0] for r in loaded]


def test_embeddings_of_stored_detections_copy_then_upsert(store):
    conn, ids = store
    boxes = [_batch(ids[:2], [2, 1], seed=7)]
    write_all(conn, iter(boxes), "det-v1", True, None, {})
    with conn, conn.cursor() as cur:
        cur.execute("SELECT image_id, array_agg(id ORDER BY det_index) FROM detections GROUP BY 1")
        stored_ids = {i: np.asarray(d, np.int64) for i, d in cur.fetchall()}
    for seed in (8, 9):  # first load of the vectors, then a re-run that replaces them
        batch = _batch(ids[:2], [2, 1], seed=seed)
        _, rows = write_all(conn, iter([batch]), "det-v1", False, _Embedder, stored_ids)
        assert rows == {"detections": 3, "embeddings": 3}
        _check(_stored(conn), [batch], detections=False)


def test_class_scores_first_load_then_rerun_updates_them_and_keeps_ids(store):
    conn, ids = store
    first = [_batch(ids[:3], [2, 1, 1], seed=11, scores=False)]  # one-label rows: NULL scores
    write_all(conn, iter(first), "det-v1", True, _Embedder, {})
    loaded = _stored(conn)
    _check(loaded, first)
    assert all(r[7] is None for r in loaded)
    again = [_batch(ids[:3], [2, 1, 1], seed=12)]  # the re-run brings per-class scores
    write_all(conn, iter(again), "det-v1", True, _Embedder, {})
    replaced = _stored(conn)
    _check(replaced, again)
    assert all(set(r[7]) == {"doe", "fawn", "buck"} for r in replaced)
    assert [r[0] for r in replaced] == [r[0] for r in loaded]
