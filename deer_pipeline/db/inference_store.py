"""Writing a streaming inference pass to PostgreSQL: detections, embeddings, failed images.

Shared by the ``detections``/``embeddings`` assets and the benchmark, so the benchmark's
end-to-end figure is the assets' own write path. Each batch is one transaction, by one of two
paths:

- **first load** (none of the batch's rows exist yet, the bulk case): detection ids are taken from
  the table's sequence and both tables get a binary COPY straight into them;
- **replace** (a re-run): binary COPY into a staging table, then an upsert on the natural keys, so
  re-runs replace rows and keep detection ids (human corrections and manual sightings refer to
  them). Boxes of the same detector version that no longer appear are deleted.

A concurrent writer that loads the same images between the check and the COPY makes the COPY fail
with a unique violation; the batch is then rolled back and written by the replace path. Measured
on the 2-core machine (about 50 boxes per 32-image batch, nothing else running): 8.8-10.4 ms per
batch through staging and upsert, 5.7-6.8 ms by the first-load path. Batches commit
asynchronously (``synchronous_commit = off``: no WAL flush wait per batch); the pass ends with one
synchronous commit, which flushes all of them, so a finished pass is as durable as before and a
crash mid-pass only loses batches a re-run writes again.
Images that cannot be decoded become ``failed`` with the reason.

The HNSW index on ``embeddings`` is written through, except for bulk loads: measured on the
2-core machine, inserting through the index ran at 94-163 rows/s (slower as the graph grows), a
rebuild at 640-780 rows/s (3,000 rows; 447 rows/s for 20,000 in FACTS.md), plain COPY at about
10,000 rows/s. So ``hnsw_policy("auto")`` drops the index and rebuilds it after the pass when the
pass would add more than a sixth of the table's rows (first loads), under an advisory lock.
"""

import contextlib
import time
from collections.abc import Mapping, Sequence

import numpy as np
from psycopg2.errors import UniqueViolation

from deer_pipeline.db.columns import copy_columns
from deer_pipeline.db.copy import copy_rows
from deer_pipeline.db.indexes import create_embeddings_hnsw, drop_embeddings_hnsw
from deer_pipeline.vision.pipeline import BatchResult

DETECTION_FIELDS = (
    "image_id",
    "det_index",
    "class_name",
    "confidence",
    "x1",
    "y1",
    "x2",
    "y2",
    "class_scores",
    "monochrome",
)
"""What a writer gives for each box (``upsert_detections``); ids and the version are ours."""
_DET_COLUMNS = copy_columns("detections", DETECTION_FIELDS)
_EMB_COLUMNS = copy_columns("embeddings", ("detection_id", "embedding"))
_DET_TABLE_COLUMNS = copy_columns("detections", ("id", "model_version", *DETECTION_FIELDS))
_EMB_TABLE_COLUMNS = copy_columns("embeddings")
# One round trip: are any of the batch's boxes stored already, and ids for a first load.
# The sequence is looked up once per call (inside the ARRAY it would be looked up per id).
_FRESH_DETECTIONS = """
WITH s AS MATERIALIZED (SELECT pg_get_serial_sequence('detections', 'id')::regclass AS seq)
SELECT EXISTS (SELECT 1 FROM detections WHERE image_id = ANY(%s) AND model_version = %s),
       ARRAY(SELECT nextval(s.seq) FROM s, generate_series(1, %s))
"""
_EMBEDDINGS_STORED = (
    "SELECT EXISTS (SELECT 1 FROM embeddings WHERE detection_id = ANY(%s) AND model_version = %s)"
)

_UPSERT_DETECTIONS = """
INSERT INTO detections (image_id, model_version, det_index, class_name, confidence, x1, y1, x2, y2,
                        class_scores, monochrome)
SELECT image_id, %s, det_index, class_name, confidence, x1, y1, x2, y2, class_scores, monochrome
FROM stage_detections
ON CONFLICT (image_id, model_version, det_index) DO UPDATE SET
    class_name = EXCLUDED.class_name, confidence = EXCLUDED.confidence,
    x1 = EXCLUDED.x1, y1 = EXCLUDED.y1, x2 = EXCLUDED.x2, y2 = EXCLUDED.y2,
    class_scores = EXCLUDED.class_scores, monochrome = EXCLUDED.monochrome
RETURNING id, image_id, det_index
"""
_DELETE_BEYOND = """
DELETE FROM detections d USING unnest(%s::bigint[], %s::int[]) AS c(image_id, n)
WHERE d.image_id = c.image_id AND d.model_version = %s AND d.det_index >= c.n
"""
DELETE_NOT_OK = """
DELETE FROM detections d USING images i
WHERE d.image_id = i.id AND i.location_key = %s AND i.status <> 'ok' AND d.model_version = %s
"""
_UPSERT_EMBEDDINGS = """
INSERT INTO embeddings (detection_id, model_version, embedding)
SELECT detection_id, %s, embedding FROM stage_embeddings
ON CONFLICT (detection_id, model_version) DO UPDATE SET embedding = EXCLUDED.embedding
"""
_MARK_FAILED = """
UPDATE images SET status = 'failed', error = c.reason
FROM unnest(%s::bigint[], %s::text[]) AS c(id, reason) WHERE images.id = c.id
"""
_STORED_BOXES = """
SELECT i.id, i.rel_path, array_agg(d.id ORDER BY d.det_index),
       array_agg(ARRAY[d.x1, d.y1, d.x2, d.y2] ORDER BY d.det_index)
FROM images i JOIN detections d ON d.image_id = i.id AND d.model_version = %s
WHERE i.location_key = %s AND i.status = 'ok' GROUP BY i.id ORDER BY i.id
"""


# Measured ratio of HNSW rebuild speed to insert-through-index speed (see the module docstring).
REBUILD_SPEEDUP = 6
_HNSW_LOCK = "SELECT pg_advisory_lock(hashtext('deer_pipeline.embeddings_hnsw'))"
_HNSW_UNLOCK = "SELECT pg_advisory_unlock(hashtext('deer_pipeline.embeddings_hnsw'))"


@contextlib.contextmanager
def hnsw_policy(conn, mode: str, new_rows: int):
    """Drop the embeddings HNSW index for a bulk load and rebuild it afterwards, when worth it.

    Args:
        conn: a connection of its own (holds a session advisory lock while the index is down).
        mode: ``auto``, ``keep`` or ``rebuild``.
        new_rows: rows the pass is expected to write.

    Yields:
        A dict that ends up with ``hnsw`` (``kept`` or ``rebuilt``) and ``hnsw_seconds``.
    """
    if mode not in ("auto", "keep", "rebuild"):
        raise ValueError(f"hnsw must be auto, keep or rebuild, not {mode!r}")
    with conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM embeddings")
        existing = cur.fetchone()[0]
    rebuild = mode == "rebuild" or (mode == "auto" and new_rows * REBUILD_SPEEDUP > existing)
    info = {"hnsw": "kept", "hnsw_seconds": 0.0, "hnsw_rows_before": existing}
    if not rebuild:
        yield info
        return
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(_HNSW_LOCK)
        try:
            drop_embeddings_hnsw(cur)
            yield info
        finally:
            start = time.perf_counter()
            cur.execute("SET maintenance_work_mem = '1GB'")
            create_embeddings_hnsw(cur)
            cur.execute(_HNSW_UNLOCK)
            info.update(hnsw="rebuilt", hnsw_seconds=round(time.perf_counter() - start, 3))


def stage_tables(cur) -> None:
    """Create this session's staging tables if they do not exist.

    Each batch empties them with ``DELETE`` before it commits (``clear_stage``): ``ON COMMIT
    DELETE ROWS`` truncates the files at every commit, which measured 7 ms of a 22 ms batch here.
    """
    cur.execute(
        "CREATE TEMP TABLE IF NOT EXISTS stage_detections (image_id bigint, det_index int, "
        "class_name text, confidence real, x1 real, y1 real, x2 real, y2 real, class_scores jsonb, "
        "monochrome boolean);"
        "CREATE TEMP TABLE IF NOT EXISTS stage_embeddings (detection_id bigint, "
        "embedding halfvec(2048));"
        "DELETE FROM stage_detections; DELETE FROM stage_embeddings"
    )


def clear_stage(cur) -> None:
    """Empty the staging tables at the end of a batch's transaction."""
    cur.execute("DELETE FROM stage_detections; DELETE FROM stage_embeddings")


def write_detections(
    cur, model_version: str, batch: BatchResult, replace: bool
) -> tuple[np.ndarray, bool]:
    """Write a batch's boxes (first-load COPY or replace upsert); return ids and the path taken.

    Args:
        cur: cursor inside the batch's transaction.
        model_version: the detector's version.
        batch: the pipeline's batch (failed images count as having no boxes).
        replace: skip the first-load check and upsert (the fallback after a unique violation).

    Returns:
        (n,) int64 detection ids aligned with the batch's rows, and whether they were created by
        the first-load path (then no row of this batch existed before).
    """
    images = batch.image_ids + [i for i, _ in batch.failures]
    n = len(batch.boxes)
    if not replace:
        ids = first_load_ids(cur, images, model_version, n)
        if ids is not None:
            copy_rows(
                cur,
                "detections",
                _DET_TABLE_COLUMNS,
                {"id": ids, "model_version": [model_version] * n} | _detection_columns(batch),
            )
            return ids, True
    return _upsert_detections(cur, model_version, batch, images), False


def first_load_ids(cur, images: list[int], model_version: str, n: int) -> np.ndarray | None:
    """Ids for ``n`` new boxes when none of ``images`` has boxes of this version, else None."""
    cur.execute(_FRESH_DETECTIONS, (images, model_version, n))
    stored, ids = cur.fetchone()
    return None if stored else np.asarray(ids, np.int64)


def _detection_columns(batch: BatchResult) -> dict:
    b = batch.boxes
    return {
        "image_id": batch.det_image_id,
        "det_index": batch.det_index,
        "class_name": batch.class_name,
        "confidence": batch.confidence,
        "x1": b[:, 0],
        "y1": b[:, 1],
        "x2": b[:, 2],
        "y2": b[:, 3],
        "class_scores": batch.class_scores or [None] * len(b),
        "monochrome": batch.monochrome if batch.monochrome is not None else [None] * len(b),
    }


def _upsert_detections(cur, model_version: str, batch: BatchResult, images: list) -> np.ndarray:
    return upsert_detections(cur, model_version, _detection_columns(batch), images)


def upsert_detections(
    cur, model_version: str, columns: Mapping[str, Sequence], images: Sequence[int]
) -> np.ndarray:
    """Replace ``images``' boxes of ``model_version``: upsert by natural key, drop the rest.

    Detection ids stay stable for boxes that are still there (``(image_id, model_version,
    det_index)``), so human corrections and manual sightings keep pointing at them.

    Args:
        cur: a cursor in the caller's transaction, after ``stage_tables`` (the caller empties
            them with ``clear_stage`` before it commits).
        model_version: the detector version the boxes are stored under.
        columns: ``DETECTION_FIELDS`` -> one value per box (``det_index`` 0.. per image).
        images: every image whose boxes this replaces (also those that now have none).

    Returns:
        The stored ids, in the order of ``columns``.
    """
    copy_rows(cur, "stage_detections", _DET_COLUMNS, columns)
    image_ids = np.asarray(columns["image_id"], np.int64)
    ids = np.zeros(len(image_ids), np.int64)
    if len(ids):
        cur.execute(_UPSERT_DETECTIONS, (model_version,))
        keys = zip(image_ids, columns["det_index"], strict=True)
        where = {(int(i), int(k)): n for n, (i, k) in enumerate(keys)}
        for det_id, image_id, det_index in cur.fetchall():
            ids[where[(image_id, det_index)]] = det_id
    counts = [int(np.sum(image_ids == i)) for i in images]
    cur.execute(_DELETE_BEYOND, (list(images), counts, model_version))
    return ids


def write_embeddings(
    cur, model_version: str, det_ids: np.ndarray, embeddings: np.ndarray, mode: str = "auto"
) -> int:
    """Write embeddings of detections: COPY straight in when none can exist, else upsert.

    Args:
        cur: cursor inside the batch's transaction.
        model_version: the embedder's version.
        det_ids: (n,) detection ids, aligned with ``embeddings``.
        embeddings: (n, 2048) vectors.
        mode: ``copy`` (the detections were created in this transaction, so no embedding of
            them exists), ``upsert``, or ``auto`` (ask the table which of the two applies).

    Returns:
        Rows written.
    """
    if not len(det_ids):
        return 0
    if mode == "auto":
        cur.execute(_EMBEDDINGS_STORED, (det_ids.tolist(), model_version))
        mode = "upsert" if cur.fetchone()[0] else "copy"
    if mode == "copy":
        data = {
            "detection_id": det_ids,
            "model_version": [model_version] * len(det_ids),
            "embedding": embeddings,
        }
        return copy_rows(cur, "embeddings", _EMB_TABLE_COLUMNS, data)
    n = copy_rows(
        cur, "stage_embeddings", _EMB_COLUMNS, {"detection_id": det_ids, "embedding": embeddings}
    )
    cur.execute(_UPSERT_EMBEDDINGS, (model_version,))
    return n


def mark_failed(cur, failures: list[tuple[int, str]]) -> None:
    """Set images that could not be decoded to ``failed`` with the reason."""
    if failures:
        cur.execute(_MARK_FAILED, ([i for i, _ in failures], [r for _, r in failures]))


def location_records(cur, root, location_key: str, detector_version: str | None):
    """The partition's ok images as pipeline records; with a version, their stored boxes too."""
    if detector_version is None:
        cur.execute(
            "SELECT id, rel_path FROM images WHERE location_key = %s AND status = 'ok' ORDER BY id",
            (location_key,),
        )
        return [(i, root / rel) for i, rel in cur.fetchall()], {}
    cur.execute(_STORED_BOXES, (detector_version, location_key))
    rows = cur.fetchall()
    det_ids = {i: np.asarray(ids, np.int64) for i, _, ids, _ in rows}
    return [(i, root / rel, np.asarray(b, np.float32)) for i, rel, _, b in rows], det_ids


def stored_ids_of(stored_ids: dict[int, np.ndarray], batch: BatchResult) -> np.ndarray:
    """Ids of the stored detections a batch of given boxes stands for, in row order."""
    return np.array(
        [
            stored_ids[int(i)][int(k)]
            for i, k in zip(batch.det_image_id, batch.det_index, strict=True)
        ],
        np.int64,
    )


def write_all(conn, batches, det_version, detect, emb_model, stored_ids) -> tuple[float, dict]:
    """Write each batch in its own transaction as it comes; return (seconds, row counts).

    Args:
        conn: the writing connection (its staging tables made by ``stage_tables``).
        batches: the pipeline's ``BatchResult`` stream.
        det_version: the detector version the rows belong to.
        detect: write the batches' boxes (else the embeddings refer to ``stored_ids``).
        emb_model: the embedder (its ``model_version``), or None for no embeddings.
        stored_ids: image id -> stored detection ids, for ``detect=False``.

    Returns:
        Seconds spent writing (the final flush included) and rows written per table.
    """
    write_s, rows = 0.0, {"detections": 0, "embeddings": 0}
    for batch in batches:
        start = time.perf_counter()
        try:
            written = _write_batch(conn, batch, det_version, detect, emb_model, stored_ids, False)
        except UniqueViolation:  # a concurrent first load of the same rows: replace them
            written = _write_batch(conn, batch, det_version, detect, emb_model, stored_ids, True)
        for table, n in written.items():
            rows[table] += n
        write_s += time.perf_counter() - start
    start = time.perf_counter()
    with conn, conn.cursor() as cur:  # a synchronous commit flushes every batch's WAL
        cur.execute("SELECT pg_current_xact_id()")
    return write_s + time.perf_counter() - start, rows


def _write_batch(conn, batch, det_version, detect, emb_model, stored_ids, replace) -> dict:
    with conn, conn.cursor() as cur:
        cur.execute("SET LOCAL synchronous_commit = off")
        mark_failed(cur, batch.failures)
        if detect:
            ids, created = write_detections(cur, det_version, batch, replace)
        else:
            ids, created = stored_ids_of(stored_ids, batch), False
        written = {"detections": len(ids), "embeddings": 0}
        if emb_model is not None:
            mode = "copy" if created else "upsert" if replace else "auto"
            written["embeddings"] = write_embeddings(
                cur, emb_model.model_version, ids, batch.embeddings, mode
            )
        if not created:
            clear_stage(cur)
    return written
