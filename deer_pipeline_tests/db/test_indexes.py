"""One HNSW index per embedding model version: created on first write, one definition, dropped."""

import numpy as np
import pytest

from deer_pipeline.db.copy import copy_rows
from deer_pipeline.db.indexes import (
    DimensionMismatch,
    create_embeddings_hnsw,
    drop_embeddings_hnsw,
    forget_model_version,
    halfvec_cast,
    index_definition,
    index_name,
    model_dimension,
    register_model_version,
)


def test_register_creates_each_versions_indexes_once(clean_db, db_conn):
    with db_conn.cursor() as cur:
        assert register_model_version(cur, "timm-x-abc", 192)
        assert not register_model_version(cur, "timm-x-abc", 192)  # already there
        assert model_dimension(cur, "timm-x-abc") == 192
        definition = index_definition(cur, index_name("embeddings", "timm-x-abc"))
        assert definition == (
            f"CREATE INDEX {index_name('embeddings', 'timm-x-abc')} ON public.embeddings "
            "USING hnsw (((embedding)::halfvec(192)) halfvec_cosine_ops) "
            "WHERE (model_version = 'timm-x-abc'::text)"
        )
        assert "halfvec(192)" in index_definition(cur, index_name("deer", "timm-x-abc"))
        drop_embeddings_hnsw(cur, "timm-x-abc")
        assert index_definition(cur, index_name("embeddings", "timm-x-abc")) is None
        create_embeddings_hnsw(cur, "timm-x-abc")
        assert index_definition(cur, index_name("embeddings", "timm-x-abc")) == definition
        with pytest.raises(DimensionMismatch, match="192-d vectors in this database"):
            register_model_version(cur, "timm-x-abc", 768)
    db_conn.rollback()


def test_a_vector_of_another_size_cannot_join_a_version(clean_db, db_conn):
    from psycopg2.errors import DataException

    with db_conn.cursor() as cur:
        register_model_version(cur, "v", 4)
        cur.execute("INSERT INTO locations (key, folder) VALUES ('L', 'L')")
        cur.execute("INSERT INTO images (location_key, rel_path, status) VALUES ('L', 'a', 'ok')")
        cur.execute(
            "INSERT INTO detections (image_id, model_version, det_index, class_name, confidence,"
            " x1, y1, x2, y2) VALUES (1, 'd', 0, 'doe', 0.9, 0, 0, 1, 1) RETURNING id"
        )
        det = cur.fetchone()[0]
        cur.execute("INSERT INTO embeddings VALUES (%s, 'v', '[1,0,0,0]')", (det,))
        with pytest.raises(DataException, match="expected 4 dimensions"):
            cur.execute("INSERT INTO embeddings VALUES (%s, 'v', '[1,0,0]')", (det + 1,))
    db_conn.rollback()


def test_forget_drops_the_versions_vectors_and_indexes_only(clean_db, db_conn):
    with db_conn.cursor() as cur:
        register_model_version(cur, "keep", 3)
        register_model_version(cur, "gone", 5)
        cur.execute("INSERT INTO locations (key, folder) VALUES ('L', 'L')")
        cur.execute("INSERT INTO images (location_key, rel_path, status) VALUES ('L', 'a', 'ok')")
        cur.execute(
            "INSERT INTO detections (image_id, model_version, det_index, class_name, confidence,"
            " x1, y1, x2, y2) VALUES (1, 'd', 0, 'doe', 0.9, 0, 0, 1, 1) RETURNING id"
        )
        det = cur.fetchone()[0]
        vectors = np.eye(5, dtype=np.float32)[:1]
        copy_rows(
            cur,
            "embeddings",
            [("detection_id", "int8"), ("model_version", "text"), ("embedding", "halfvec")],
            {"detection_id": [det], "model_version": ["gone"], "embedding": vectors},
        )
        cur.execute("INSERT INTO embeddings VALUES (%s, 'keep', '[1,0,0]')", (det,))
        assert forget_model_version(cur, "gone") == 1
        assert model_dimension(cur, "gone") is None and model_dimension(cur, "keep") == 3
        assert index_definition(cur, index_name("embeddings", "gone")) is None
        assert index_definition(cur, index_name("deer", "gone")) is None
        assert index_definition(cur, index_name("embeddings", "keep")) is not None
        cur.execute("SELECT model_version FROM embeddings")
        assert cur.fetchall() == [("keep",)]
    db_conn.rollback()


def test_the_cast_refuses_sizes_hnsw_cannot_index():
    assert halfvec_cast(768) == "halfvec(768)"
    with pytest.raises(ValueError, match="outside 1..4000"):
        halfvec_cast(4001)


def test_forget_model_command_asks_first(clean_db, db_conn, capsys):
    from deer_pipeline.cli import main

    with db_conn.cursor() as cur:
        register_model_version(cur, "old-model", 8)
    db_conn.commit()
    assert main(["db", "forget-model", "old-model"]) == 0
    assert "would delete 0 embeddings of old-model (8-d)" in capsys.readouterr().out
    with db_conn.cursor() as cur:
        assert model_dimension(cur, "old-model") == 8
    db_conn.rollback()
    assert main(["db", "forget-model", "old-model", "--yes"]) == 0
    with db_conn.cursor() as cur:
        assert model_dimension(cur, "old-model") is None
        assert index_definition(cur, index_name("embeddings", "old-model")) is None
    db_conn.rollback()
    assert main(["db", "forget-model", "old-model"]) == 2
    assert "no embedding model version old-model" in capsys.readouterr().err
