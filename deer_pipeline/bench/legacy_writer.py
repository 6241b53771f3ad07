"""The write path of the system we replace, kept only to measure against it side by side.

That system wrote detections and embeddings through the SQLAlchemy ORM with
``session.bulk_save_objects(objects, return_defaults=True)`` (after an earlier per-row ``add`` +
``flush`` version). Here the same rows go into scratch tables ``legacy_bench_detections`` and
``legacy_bench_embeddings`` (created and dropped by the benchmark) so the ratio to the project's
binary COPY path is measured on identical data, on the same server, in the same run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from pgvector.sqlalchemy import HALFVEC
from sqlalchemy import BigInteger, Float, ForeignKey, Integer, String, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column


class _Base(DeclarativeBase):
    pass


class LegacyDetection(_Base):
    """A detection row as the old ORM model declared it."""

    __tablename__ = "legacy_bench_detections"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    image_id: Mapped[int] = mapped_column(BigInteger)
    model_version: Mapped[str] = mapped_column(String)
    det_index: Mapped[int] = mapped_column(Integer)
    class_name: Mapped[str] = mapped_column(String)
    confidence: Mapped[float] = mapped_column(Float)
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    x2: Mapped[float] = mapped_column(Float)
    y2: Mapped[float] = mapped_column(Float)


class LegacyEmbedding(_Base):
    """An embedding row as the old ORM model declared it."""

    __tablename__ = "legacy_bench_embeddings"
    detection_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("legacy_bench_detections.id", ondelete="CASCADE"), primary_key=True
    )
    model_version: Mapped[str] = mapped_column(String, primary_key=True)
    embedding = mapped_column(HALFVEC())  # the model's size (2048 for the default ResNet50)


@dataclass(frozen=True)
class LegacyWriteResult:
    """Rows written and seconds taken by the ORM path."""

    detections: int
    embeddings: int
    seconds: float

    @property
    def rows_per_s(self) -> float:
        """Detection plus embedding rows per second."""
        return (self.detections + self.embeddings) / self.seconds if self.seconds else 0.0


def write_with_bulk_save_objects(
    sqlalchemy_url: str, detections: dict[str, np.ndarray | list], embeddings: np.ndarray
) -> LegacyWriteResult:
    """Write detections and their embeddings the old way and time it (tables dropped after).

    Args:
        sqlalchemy_url: ``postgresql+psycopg2://`` URL of the data database.
        detections: column name -> values for ``image_id, model_version, det_index, class_name,
            confidence, x1, y1, x2, y2`` (one entry per detection).
        embeddings: ``(n_detections, dim)`` float array, row i belongs to detection i.

    Returns:
        Counts and the seconds spent in ``bulk_save_objects`` and commit.
    """
    engine = create_engine(sqlalchemy_url)
    _Base.metadata.drop_all(engine)
    _Base.metadata.create_all(engine)
    n = len(detections["image_id"])
    try:
        with Session(engine) as session:
            start = time.perf_counter()
            rows = [
                LegacyDetection(
                    image_id=int(detections["image_id"][i]),
                    model_version=str(detections["model_version"][i]),
                    det_index=int(detections["det_index"][i]),
                    class_name=str(detections["class_name"][i]),
                    confidence=float(detections["confidence"][i]),
                    x1=float(detections["x1"][i]),
                    y1=float(detections["y1"][i]),
                    x2=float(detections["x2"][i]),
                    y2=float(detections["y2"][i]),
                )
                for i in range(n)
            ]
            session.bulk_save_objects(rows, return_defaults=True)
            session.bulk_save_objects(
                [
                    LegacyEmbedding(
                        detection_id=row.id,
                        model_version=row.model_version,
                        embedding=embeddings[i].astype(np.float32),
                    )
                    for i, row in enumerate(rows)
                ],
                return_defaults=True,
            )
            session.commit()
            seconds = time.perf_counter() - start
    finally:
        _Base.metadata.drop_all(engine)
        engine.dispose()
    return LegacyWriteResult(detections=n, embeddings=n, seconds=seconds)
