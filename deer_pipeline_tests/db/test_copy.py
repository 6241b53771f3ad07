import datetime as dt

import numpy as np
import pytest
from pgvector.psycopg2 import register_vector

from deer_pipeline.db.copy import copy_rows, encode_copy_binary

COLUMNS = [
    ("id", "int8"),
    ("label", "text"),
    ("score", "float4"),
    ("precise", "float8"),
    ("taken", "timestamp"),
    ("logged", "timestamptz"),
    ("flag", "bool"),
    ("small", "int2"),
    ("doc", "jsonb"),
    ("emb", "halfvec"),
    ("full_vec", "vector"),
]


@pytest.fixture
def scratch_table(db_conn):
    with db_conn.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE copy_rt (id int8, label text, score float4, precise float8,"
            " taken timestamp, logged timestamptz, flag bool, small int2, doc jsonb,"
            " emb halfvec(16), full_vec vector(8))"
        )
    register_vector(db_conn)
    return db_conn


def _rows(n, rng):
    return {
        "id": np.arange(n, dtype=np.int64) * 1_000_000_007,
        "label": [None if i == 3 else f"Ridge #{i} 'cam'; é\t" for i in range(n)],
        "score": rng.random(n).astype(np.float32),
        "precise": rng.standard_normal(n),
        "taken": [
            dt.datetime(1999, 12, 31, 23, 59, 59, 999999) + dt.timedelta(hours=i) for i in range(n)
        ],
        "logged": [dt.datetime(2026, 5, 1, 8, 30, tzinfo=dt.timezone(dt.timedelta(hours=-6)))] * n,
        "flag": np.arange(n) % 2 == 0,
        "small": [None if i == 5 else i - 3 for i in range(n)],
        "doc": [{"i": i, "tags": ["a", "b"]} for i in range(n)],
        "emb": rng.standard_normal((n, 16)).astype(np.float32) * 3,
        "full_vec": rng.standard_normal((n, 8)).astype(np.float32),
    }


def test_round_trip_is_bit_exact(scratch_table):
    rng = np.random.default_rng(42)
    data = _rows(50, rng)
    with scratch_table.cursor() as cur:
        assert copy_rows(cur, "copy_rt", COLUMNS, data) == 50
        cur.execute("SELECT * FROM copy_rt ORDER BY id")
        rows = cur.fetchall()
    assert len(rows) == 50
    for i, row in enumerate(rows):
        assert row[0] == int(data["id"][i])
        assert row[1] == data["label"][i]
        assert np.float32(row[2]).tobytes() == data["score"][i].tobytes()
        assert np.float64(row[3]).tobytes() == data["precise"][i].tobytes()
        assert row[4] == data["taken"][i]
        assert row[5] == data["logged"][i]
        assert row[6] == bool(data["flag"][i])
        assert row[7] == data["small"][i]
        assert row[8] == data["doc"][i]
        # halfvec: exactly the float16 rounding of the input, bit for bit
        expected = data["emb"][i].astype(np.float16).tobytes()
        assert row[9].to_numpy().astype(np.float16).tobytes() == expected
        assert row[10].to_numpy().astype(np.float32).tobytes() == data["full_vec"][i].tobytes()


def test_halfvec_2048_round_trip_in_embeddings_shape(scratch_table):
    rng = np.random.default_rng(1)
    emb = rng.standard_normal((20, 2048)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    with scratch_table.cursor() as cur:
        cur.execute("CREATE TEMP TABLE e2048 (id int4, e halfvec(2048))")
        copy_rows(
            cur,
            "e2048",
            [("id", "int4"), ("e", "halfvec")],
            {"id": np.arange(20, dtype=np.int32), "e": emb},
        )
        cur.execute("SELECT e FROM e2048 ORDER BY id")
        back = np.stack([r[0].to_numpy() for r in cur.fetchall()])
    assert back.astype(np.float16).tobytes() == emb.astype(np.float16).tobytes()


def test_encode_rejects_ragged_columns():
    with pytest.raises(ValueError, match="expected 2"):
        encode_copy_binary([("a", "int4"), ("b", "text")], {"a": np.arange(2), "b": ["x"]})


def test_naive_vs_aware_timestamps_are_checked():
    with pytest.raises(ValueError, match="naive"):
        encode_copy_binary([("t", "timestamp")], {"t": [dt.datetime.now(dt.UTC)]})
