"""The embeddings HNSW index has one definition, and the migrated schema holds exactly it."""

from deer_pipeline.db.indexes import (
    EMBEDDINGS_HNSW_NAME,
    create_embeddings_hnsw,
    drop_embeddings_hnsw,
    index_definition,
)


def test_rebuilt_index_is_the_migrated_one(clean_db, db_conn):
    with db_conn.cursor() as cur:
        migrated = index_definition(cur, EMBEDDINGS_HNSW_NAME)
        assert migrated == (
            "CREATE INDEX embeddings_hnsw ON public.embeddings "
            "USING hnsw (embedding halfvec_cosine_ops)"
        )
        drop_embeddings_hnsw(cur)
        assert index_definition(cur, EMBEDDINGS_HNSW_NAME) is None
        create_embeddings_hnsw(cur)
        assert index_definition(cur, EMBEDDINGS_HNSW_NAME) == migrated
        create_embeddings_hnsw(cur)  # already there: nothing happens
    db_conn.rollback()
