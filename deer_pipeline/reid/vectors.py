"""Moving pgvector values between PostgreSQL and numpy without text parsing on the bulk path.

Reading thousands of 2048-d ``halfvec`` values as text costs milliseconds each; a binary
``COPY ... TO STDOUT`` of fixed-width rows decodes with one numpy view. Single query vectors still
go as text literals (``'[...]'::halfvec``), which psycopg2 can send without extra adapters.
"""

from __future__ import annotations

import io

import numpy as np

_HEADER_LEN = 19  # signature (11) + flags (4) + header extension length (4), extension empty


def vector_literal(values: np.ndarray, digits: int = 6) -> str:
    """Format a vector as a pgvector text literal, e.g. ``[0.1,0.2]``.

    Args:
        values: a 1-d array.
        digits: significant digits per element (6 is below halfvec's and near float32's).
    """
    fmt = f"%.{digits}g"
    return "[" + ",".join(fmt % x for x in np.asarray(values, dtype=np.float64).tolist()) + "]"


def normalise_rows(mat: np.ndarray) -> np.ndarray:
    """Return the rows scaled to unit L2 norm (zero rows stay zero), as float32."""
    mat = np.asarray(mat, dtype=np.float32)
    norms = np.linalg.norm(mat, axis=-1, keepdims=True)
    return np.divide(mat, norms, out=np.zeros_like(mat), where=norms > 0)


def read_id_halfvecs(cur, query: str, params: object = None, dim: int | None = None):
    """Run ``query`` (selecting ``bigint id, halfvec vector``, no NULLs) via binary COPY.

    Args:
        cur: a psycopg2 cursor.
        query: a SELECT whose two columns are a non-null bigint and a non-null halfvec, every
            vector of one size (one model version).
        params: query parameters, bound with psycopg2's client-side quoting.
        dim: the vector dimension; None: the first row's (an empty result is n x 0).

    Returns:
        (ids int64 array of n, float32 matrix of n x dim).

    Raises:
        ValueError: the vectors are not all of that size.
    """
    return _read_id_vectors(cur, query, params, dim, ">f2")


def read_id_vectors(cur, query: str, params: object = None, dim: int | None = None):
    """Like ``read_id_halfvecs`` for a ``vector`` column (float32 on the wire)."""
    return _read_id_vectors(cur, query, params, dim, ">f4")


def _read_id_vectors(cur, query: str, params: object, dim: int | None, element: str):
    sql = cur.mogrify(query, params).decode() if params is not None else query
    buf = io.BytesIO()
    cur.copy_expert(f"COPY ({sql}) TO STDOUT (FORMAT BINARY)", buf)
    data = buf.getvalue()
    body = data[_HEADER_LEN:-2]  # drop the header and the -1 trailer
    if dim is None:  # the first row's: field count, id length, id, vector length, then its dims
        dim = int.from_bytes(body[18:20], "big") if len(body) >= 20 else 0
    row = np.dtype(
        [
            ("fields", ">i2"),
            ("id_len", ">i4"),
            ("id", ">i8"),
            ("vec_len", ">i4"),
            ("dim", ">i2"),
            ("unused", ">i2"),
            ("vec", element, (dim,)),
        ]
    )
    if len(body) % row.itemsize:
        raise ValueError(f"unexpected COPY payload for {dim}-d vector rows")
    rows = np.frombuffer(body, dtype=row)
    if len(rows) and (rows["dim"] != dim).any():
        raise ValueError(f"vectors are not {dim}-d")
    return rows["id"].astype(np.int64), rows["vec"].astype(np.float32)
