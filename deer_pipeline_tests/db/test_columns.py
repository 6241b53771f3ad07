"""The COPY column registry matches the migrated schema, column by column."""

from __future__ import annotations

import pytest

from deer_pipeline.db.columns import COPY_TYPES, copy_columns
from deer_pipeline.db.connect import connect

# information_schema's udt_name for each COPY type (user-defined types by their own name)
_UDT = {"timestamp": "timestamp", "vector": "vector", "halfvec": "halfvec"}


def test_every_registered_column_exists_with_its_type(db_urls):
    conn = connect(db_urls.data)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT table_name, column_name, udt_name FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name = ANY(%s)",
            (list(COPY_TYPES),),
        )
        schema = {(t, c): udt for t, c, udt in cur.fetchall()}
    conn.close()
    for table, columns in COPY_TYPES.items():
        for column, pgtype in columns.items():
            assert schema.get((table, column)) == _UDT.get(pgtype, pgtype), (table, column)


def test_copy_columns_in_the_order_asked():
    assert copy_columns("embeddings", ["embedding", "detection_id"]) == [
        ("embedding", "halfvec"),
        ("detection_id", "int8"),
    ]
    with pytest.raises(KeyError):
        copy_columns("detections", ["no_such_column"])
