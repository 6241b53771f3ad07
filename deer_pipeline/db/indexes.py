"""The HNSW indexes over re-ID vectors: one per model version, their one definition, the kNN cast.

Vectors of several sizes share ``embeddings.embedding`` and ``deer.embedding`` (``halfvec``
without a size, ``sql/010``). pgvector indexes vectors of one size only, so each embedding model
version gets its own index on each table: an expression index on the cast to the version's size,
partial on the version (pgvector's documented way to index several dimensions)::

    CREATE INDEX embeddings_hnsw_<tag> ON embeddings
        USING hnsw ((embedding::halfvec(N)) halfvec_cosine_ops) WHERE model_version = '<v>'

A kNN query is served by it only when it filters on the same version and orders by the same cast
(:func:`halfvec_cast`): every ``<=>`` in the project is written that way. A version's size is
recorded in ``embedding_models`` when it first writes (:func:`register_model_version`, which
creates both indexes), and :func:`forget_model_version` drops them with its vectors.
``sql/010`` recreated the existing 2048-d index in this form for the versions already stored; a
test checks that its definition is the one here. While an index exists, a vector of another size
under its version cannot be written (the cast fails): sizes never mix within a version.
"""

from __future__ import annotations

import hashlib

from psycopg2 import sql

from deer_pipeline.errors import DeerError
from deer_pipeline.vision.backbones import HNSW_MAX_DIM

_TABLES = {"embeddings": "embeddings_hnsw_", "deer": "deer_gallery_hnsw_"}
_LOCK = "SELECT pg_advisory_xact_lock(hashtext('deer_pipeline.embedding_models'))"
_DEFINITION = (
    "CREATE INDEX IF NOT EXISTS {name} ON {table} USING hnsw "
    "((embedding::halfvec({dim})) halfvec_cosine_ops) WHERE model_version = {version}"
)


class DimensionMismatch(DeerError):
    """A model version's vectors would change size."""


def halfvec_cast(dim: int) -> str:
    """Return the type kNN queries cast both sides to, e.g. ``halfvec(2048)``."""
    dim = int(dim)
    if not 1 <= dim <= HNSW_MAX_DIM:
        raise ValueError(f"vector size {dim} is outside 1..{HNSW_MAX_DIM}")
    return f"halfvec({dim})"


def index_name(table: str, model_version: str) -> str:
    """Return the HNSW index name of a model version on ``embeddings`` or ``deer``.

    The tag is the first 12 hex digits of the version's MD5 (``sql/010`` computes the same), so
    any version string gives a valid, short name.
    """
    return _TABLES[table] + hashlib.md5(model_version.encode()).hexdigest()[:12]


def index_sql(table: str, model_version: str, dim: int) -> sql.Composed:
    """Return the ``CREATE INDEX IF NOT EXISTS`` of a model version's HNSW index on ``table``."""
    halfvec_cast(dim)  # validates the size
    return sql.SQL(_DEFINITION).format(
        name=sql.Identifier(index_name(table, model_version)),
        table=sql.Identifier(table),
        dim=sql.SQL(str(int(dim))),
        version=sql.Literal(model_version),
    )


def model_dimension(cursor, model_version: str) -> int | None:
    """Return the registered vector size of a model version, or None if it never wrote."""
    cursor.execute(
        "SELECT dimensions FROM embedding_models WHERE model_version = %s", (model_version,)
    )
    row = cursor.fetchone()
    return int(row[0]) if row else None


def model_dimensions(cursor) -> dict[str, int]:
    """Return every registered model version with its vector size."""
    cursor.execute("SELECT model_version, dimensions FROM embedding_models")
    return {v: int(d) for v, d in cursor.fetchall()}


def register_model_version(cursor, model_version: str, dim: int) -> bool:
    """Record a model version's vector size and create its HNSW indexes (idempotent).

    Takes a transaction-scoped advisory lock, so concurrent first writers create the indexes
    once; the caller commits (before its bulk writes, so others see the registration).

    Args:
        cursor: a cursor inside the caller's transaction.
        model_version: the embedding model version.
        dim: the length of its vectors.

    Returns:
        Whether the version was new.

    Raises:
        DimensionMismatch: the version is registered with another size.
    """
    halfvec_cast(dim)
    cursor.execute(_LOCK)
    known = model_dimension(cursor, model_version)
    if known is not None and known != dim:
        raise DimensionMismatch(
            f"model version {model_version} has {known}-d vectors in this database, "
            f"the model gives {dim}-d: not written"
        )
    if known is None:
        cursor.execute(
            "INSERT INTO embedding_models (model_version, dimensions) VALUES (%s, %s)",
            (model_version, dim),
        )
    for table in _TABLES:
        cursor.execute(index_sql(table, model_version, dim))
    return known is None


def create_embeddings_hnsw(cursor, model_version: str) -> None:
    """Create a registered version's ``embeddings`` index if it is missing (after a bulk load)."""
    dim = model_dimension(cursor, model_version)
    if dim is not None:
        cursor.execute(index_sql("embeddings", model_version, dim))


def drop_embeddings_hnsw(cursor, model_version: str) -> None:
    """Drop a version's ``embeddings`` index if it exists (before a bulk load)."""
    name = index_name("embeddings", model_version)
    cursor.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(name)))


def forget_model_version(cursor, model_version: str) -> int:
    """Delete a model version's embeddings and gallery vectors, its indexes and its record.

    Deer keep their sightings; a gallery of this version is cleared (the next identity run
    with another model recomputes it).

    Returns:
        Embeddings deleted.
    """
    cursor.execute(_LOCK)
    cursor.execute("DELETE FROM embeddings WHERE model_version = %s", (model_version,))
    deleted = cursor.rowcount
    cursor.execute(
        "UPDATE deer SET embedding = NULL, embedding_sum = NULL, embedding_count = 0,"
        " model_version = NULL WHERE model_version = %s",
        (model_version,),
    )
    for table in _TABLES:
        name = index_name(table, model_version)
        cursor.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(name)))
    cursor.execute("DELETE FROM embedding_models WHERE model_version = %s", (model_version,))
    return deleted


def index_definition(cursor, name: str) -> str | None:
    """Return PostgreSQL's own ``CREATE INDEX`` text for an index of schema ``public``, or None."""
    cursor.execute(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND indexname = %s", (name,)
    )
    row = cursor.fetchone()
    return row[0] if row else None
