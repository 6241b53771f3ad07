"""The embeddings HNSW index: its one definition, used wherever the index is (re)created.

``sql/001_init.sql`` created the index when the schema was first migrated (migrations are history
and never edited); every later (re)creation goes through :data:`EMBEDDINGS_HNSW` here, and a test
checks that the migrated database's index is exactly this definition.
"""

from __future__ import annotations

EMBEDDINGS_HNSW_NAME = "embeddings_hnsw"
EMBEDDINGS_HNSW = (
    f"CREATE INDEX IF NOT EXISTS {EMBEDDINGS_HNSW_NAME} ON embeddings "
    "USING hnsw (embedding halfvec_cosine_ops)"
)
"""Cosine-distance HNSW over ``embeddings.embedding`` (``halfvec(2048)``), pgvector's defaults."""


def drop_embeddings_hnsw(cursor) -> None:
    """Drop the embeddings HNSW index if it exists (before a bulk load)."""
    cursor.execute(f"DROP INDEX IF EXISTS {EMBEDDINGS_HNSW_NAME}")


def create_embeddings_hnsw(cursor) -> None:
    """Create the embeddings HNSW index if it is missing (after a bulk load)."""
    cursor.execute(EMBEDDINGS_HNSW)


def index_definition(cursor, name: str) -> str | None:
    """Return PostgreSQL's own ``CREATE INDEX`` text for an index of schema ``public``, or None."""
    cursor.execute(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND indexname = %s", (name,)
    )
    row = cursor.fetchone()
    return row[0] if row else None
