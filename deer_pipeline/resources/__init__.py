"""Typed Dagster resources: the database, the image root and the models.

:func:`project_resources` is what the code location binds: each setting the environment may
change is declared as ``dg.EnvVar(NAME)`` when ``NAME`` is set (Dagster resolves it in the process
that runs the step, and the launchpad shows which variable) and otherwise left at the resource's
visible default (the committed models, device and precision ``auto``). The image root and the
database, whose defaults live under ``DEER_HOME``, resolve that default when used.
"""

import dagster as dg

from deer_pipeline import config
from deer_pipeline.resources.database import DatabaseResource
from deer_pipeline.resources.images import ImageRootResource

__all__ = ["DatabaseResource", "ImageRootResource", "project_resources"]


def _from_env(**fields: str) -> dict:
    """Map field names to ``EnvVar(variable)`` for the variables that are set."""
    return {field: dg.EnvVar(name) for field, name in fields.items() if config.is_set(name)}


def project_resources() -> dict[str, dg.ConfigurableResource]:
    """The resources of the code location, with the environment's settings as ``EnvVar``."""
    from deer_pipeline.resources.camtrap import CamtrapResource
    from deer_pipeline.resources.models import DetectorResource, EmbedderResource
    from deer_pipeline.resources.survey import SurveyResource

    common = {"device": "DEER_DEVICE", "precision": "DEER_PRECISION"}
    detector = _from_env(weights="DEER_DETECTOR_WEIGHTS", **common)
    embedder = _from_env(weights="DEER_REID_WEIGHTS", **common)
    return {
        "database": DatabaseResource(**_from_env(url="DEER_DATABASE_URL")),
        "image_root": ImageRootResource(**_from_env(root="DEER_IMAGE_ROOT")),
        "detector": DetectorResource(**detector),
        "embedder": EmbedderResource(**embedder),
        "camtrap": CamtrapResource(),
        "survey": SurveyResource(),
    }
