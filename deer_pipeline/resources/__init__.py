"""Typed Dagster resources: the database, the image root and the models."""

from deer_pipeline.resources.database import DatabaseResource

__all__ = ["DatabaseResource"]
