import shutil

import pytest

from deer_pipeline.db.connect import connect, with_database
from deer_pipeline.db.migrations import SQL_DIR, apply_migrations, load_migrations
from deer_pipeline.errors import MigrationError


@pytest.fixture
def scratch_db(db_urls):
    """A fresh empty database on the embedded server, dropped afterwards."""
    admin = connect(with_database(db_urls.data, "postgres"), autocommit=True)
    with admin.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS migration_scratch")
        cur.execute("CREATE DATABASE migration_scratch")
    url = with_database(db_urls.data, "migration_scratch")
    yield url
    with admin.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS migration_scratch WITH (FORCE)")
    admin.close()


def test_migrations_apply_once_then_noop(scratch_db):
    conn = connect(scratch_db, autocommit=True)
    applied = apply_migrations(conn)
    assert applied == [m.name for m in load_migrations()]
    assert applied[0] == "001_init.sql"
    assert apply_migrations(conn) == []
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM schema_migrations")
        assert cur.fetchone()[0] == len(applied)
        cur.execute("SELECT to_regclass('images'), to_regclass('sightings')")
        assert cur.fetchone() == ("images", "sightings")
    conn.close()


def test_contract_tables_exist(db_conn):
    expected = {
        "images": {
            "id",
            "location_key",
            "rel_path",
            "sha256",
            "bytes",
            "width",
            "height",
            "captured_at",
            "captured_at_source",
            "camera_make",
            "camera_model",
            "burst_id",
            "status",
            "error",
        },
        "detections": {
            "id",
            "image_id",
            "model_version",
            "class_name",
            "confidence",
            "x1",
            "y1",
            "x2",
            "y2",
        },
        "embeddings": {"detection_id", "model_version", "embedding"},
        "deer": {"id", "sex", "first_seen", "last_seen", "n_sightings"},
        "sightings": {"detection_id", "deer_id", "similarity", "method"},
        "benchmark_runs": {
            "id",
            "started_at",
            "device",
            "images",
            "e2e_images_per_s",
            "model_only_images_per_s",
            "db_write_share",
            "details",
        },
    }
    with db_conn.cursor() as cur:
        for table, columns in expected.items():
            cur.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s",
                (table,),
            )
            assert columns <= {r[0] for r in cur.fetchall()}, table
        cur.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = 'embeddings'::regclass AND attname = 'embedding'"
        )
        assert cur.fetchone()[0] == "halfvec"  # any size; one HNSW index per model version
        cur.execute(
            "SELECT attrelid::regclass::text, attstorage FROM pg_attribute WHERE attname = "
            "'embedding' AND attrelid IN ('embeddings'::regclass, 'deer'::regclass) ORDER BY 1"
        )
        assert cur.fetchall() == [("deer", "p"), ("embeddings", "p")]  # inline, as 005 set


def test_edited_migration_is_refused(scratch_db, tmp_path):
    sql_dir = tmp_path / "sql"
    shutil.copytree(SQL_DIR, sql_dir)
    conn = connect(scratch_db, autocommit=True)
    apply_migrations(conn, sql_dir)
    first = sorted(sql_dir.glob("001_*.sql"))[0]
    first.write_text(first.read_text() + "\n-- an innocent-looking edit\n")
    with pytest.raises(MigrationError, match=r"001_init\.sql was edited after it was applied"):
        apply_migrations(conn, sql_dir)
    conn.close()


def test_new_migration_file_is_applied_in_order(scratch_db, tmp_path):
    sql_dir = tmp_path / "sql"
    shutil.copytree(SQL_DIR, sql_dir)
    conn = connect(scratch_db, autocommit=True)
    apply_migrations(conn, sql_dir)
    (sql_dir / "999_extra.sql").write_text("CREATE TABLE extra_thing (id int);")
    assert apply_migrations(conn, sql_dir) == ["999_extra.sql"]
    (sql_dir / "999_extra.sql").unlink()
    with pytest.raises(MigrationError, match="missing"):
        apply_migrations(conn, sql_dir)
    conn.close()


def test_failed_migration_rolls_back(scratch_db, tmp_path):
    sql_dir = tmp_path / "sql"
    shutil.copytree(SQL_DIR, sql_dir)
    (sql_dir / "998_broken.sql").write_text("CREATE TABLE half_done (id int); SELECT 1/0;")
    conn = connect(scratch_db, autocommit=True)
    with pytest.raises(Exception, match="division by zero"):
        apply_migrations(conn, sql_dir)
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('half_done'), to_regclass('images')")
        assert cur.fetchone() == (None, "images")
        cur.execute("SELECT count(*) FROM schema_migrations WHERE version = '998'")
        assert cur.fetchone()[0] == 0
    conn.close()


def test_vectors_of_any_size_keep_the_stored_2048_d_rows_and_index_them(scratch_db, tmp_path):
    """Migration 010 on a database with 2048-d rows of two versions: rows, sizes and indexes."""
    import numpy as np

    from deer_pipeline.db.copy import copy_rows
    from deer_pipeline.db.indexes import index_definition, index_name, index_sql

    before = tmp_path / "sql"
    before.mkdir()
    for migration in load_migrations():
        if migration.version < "010":
            (before / migration.name).write_text(migration.sql)
    conn = connect(scratch_db, autocommit=True)
    apply_migrations(conn, before)
    vectors = np.random.default_rng(3).normal(size=(4, 2048)).astype(np.float32)
    with conn.cursor() as cur:
        cur.execute("INSERT INTO locations (key, folder) VALUES ('L', 'L')")
        cur.execute(
            "INSERT INTO images (location_key, rel_path, status) VALUES ('L', 'L/a.jpg', 'ok')"
        )
        cur.execute(
            "INSERT INTO detections (image_id, model_version, det_index, class_name, confidence,"
            " x1, y1, x2, y2) SELECT 1, 'det', k, 'doe', 0.9, 0, 0, 1, 1"
            " FROM generate_series(0, 1) k"
        )
        copy_rows(
            cur,
            "embeddings",
            [("detection_id", "int8"), ("model_version", "text"), ("embedding", "halfvec")],
            {
                "detection_id": [1, 2, 1, 2],
                "model_version": ["a", "a", "b", "b"],
                "embedding": vectors,
            },
        )
        cur.execute(
            "INSERT INTO deer (sex, model_version, embedding, embedding_sum, embedding_count)"
            " SELECT 'doe', 'a', embedding, embedding::vector, 1 FROM embeddings"
            " WHERE detection_id = 1 AND model_version = 'a'"
        )
        cur.execute("SELECT detection_id, model_version, embedding::text FROM embeddings")
        rows = sorted(cur.fetchall())
    assert apply_migrations(conn) == [m.name for m in load_migrations() if m.version >= "010"]
    with conn.cursor() as cur:
        cur.execute("SELECT detection_id, model_version, embedding::text FROM embeddings")
        assert sorted(cur.fetchall()) == rows  # every row kept, bit for bit
        cur.execute("SELECT model_version, dimensions FROM embedding_models ORDER BY 1")
        assert cur.fetchall() == [("a", 2048), ("b", 2048)]
        for table in ("embeddings", "deer"):
            for version in ("a", "b"):
                name = index_name(table, version)
                migrated = index_definition(cur, name)
                assert "halfvec(2048)" in migrated and f"'{version}'::text" in migrated
                cur.execute(f"DROP INDEX {name}")
                cur.execute(index_sql(table, version, 2048))  # the definition's owner
                assert index_definition(cur, name) == migrated
        cur.execute("SELECT indexname FROM pg_indexes WHERE indexname LIKE '%hnsw'")
        assert cur.fetchall() == []  # the old single-size indexes are gone
        cur.execute("SET enable_seqscan = off")
        cur.execute(
            "EXPLAIN SELECT detection_id FROM embeddings WHERE model_version = 'b'"
            " ORDER BY embedding::halfvec(2048) <=> %s::halfvec(2048) LIMIT 3",
            ("[" + ",".join(["0.5"] * 2048) + "]",),
        )
        plan = "\n".join(r[0] for r in cur.fetchall())
        assert index_name("embeddings", "b") in plan, plan
    conn.close()
