"""Typed Dagster resources: the database, the image root and the models."""

from deer_pipeline.resources.database import DatabaseResource
from deer_pipeline.resources.images import ImageRootResource

__all__ = ["DatabaseResource", "ImageRootResource"]
