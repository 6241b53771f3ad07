-- 010: re-ID vectors of any dimension (issue 23: timm backbones such as MegaDescriptor, 768-d or
-- 1536-d, next to the default 2048-d ResNet50).
-- The columns lose their fixed size; each model version's vectors keep one size, recorded in
-- embedding_models. pgvector indexes only vectors of one size, so every model version gets its
-- own HNSW index, an expression index on the cast to its size with a partial WHERE on the
-- version (pgvector's documented way for several dimensions); kNN queries cast the same way.
-- The owner of these definitions is deer_pipeline/db/indexes.py, which creates them when a
-- version first writes; this migration recreates today's indexes in that form for the versions
-- already stored (a test checks the two definitions are the same).
DROP INDEX IF EXISTS embeddings_hnsw;
DROP INDEX IF EXISTS deer_gallery_hnsw;
ALTER TABLE embeddings ALTER COLUMN embedding TYPE halfvec;
ALTER TABLE deer ALTER COLUMN embedding TYPE halfvec, ALTER COLUMN embedding_sum TYPE vector;
-- A type change resets the columns' storage to the type's default: keep 005's inline vectors
-- (a halfvec of up to 4000 dimensions, 8 kB, still fits a row).
ALTER TABLE embeddings ALTER COLUMN embedding SET STORAGE PLAIN;
ALTER TABLE deer ALTER COLUMN embedding SET STORAGE PLAIN;

-- One row per embedding model version: the length of its vectors (HNSW on halfvec holds at
-- most 4000). Written before the version's first vector; the indexes are named after it.
CREATE TABLE embedding_models (
    model_version  text PRIMARY KEY,
    dimensions     integer NOT NULL CHECK (dimensions BETWEEN 1 AND 4000),
    registered_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO embedding_models (model_version, dimensions)
SELECT model_version, 2048 FROM embeddings GROUP BY model_version
UNION
SELECT model_version, 2048 FROM deer WHERE model_version IS NOT NULL AND embedding IS NOT NULL
 GROUP BY model_version;

DO $$
DECLARE
    m record;
BEGIN
    FOR m IN SELECT model_version, dimensions FROM embedding_models LOOP
        EXECUTE format(
            'CREATE INDEX IF NOT EXISTS %I ON embeddings USING hnsw '
            '((embedding::halfvec(%s)) halfvec_cosine_ops) WHERE model_version = %L',
            'embeddings_hnsw_' || left(md5(m.model_version), 12), m.dimensions, m.model_version);
        EXECUTE format(
            'CREATE INDEX IF NOT EXISTS %I ON deer USING hnsw '
            '((embedding::halfvec(%s)) halfvec_cosine_ops) WHERE model_version = %L',
            'deer_gallery_hnsw_' || left(md5(m.model_version), 12), m.dimensions, m.model_version);
    END LOOP;
END
$$;
