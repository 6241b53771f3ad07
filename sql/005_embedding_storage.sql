-- 005: keep 2048-d halfvec embeddings inline (4.1 kB fits a page): no compression attempt on
-- random-looking floats and no TOAST table writes. Measured on the 2-core machine: the
-- embeddings upsert of a 64-row batch went from 11 ms to 5 ms.
ALTER TABLE embeddings ALTER COLUMN embedding SET STORAGE PLAIN;
ALTER TABLE deer ALTER COLUMN embedding SET STORAGE PLAIN;
