"""The Dagster instance: ``DAGSTER_HOME`` with PostgreSQL storage on the project's server.

The repository's ``dagster.yaml`` reads its storage URL from ``DEER_DAGSTER_STORAGE_URL``; this
module copies it into ``DAGSTER_HOME`` and sets the variables before anything Dagster starts.
"""

from __future__ import annotations

import os
import shutil

from deer_pipeline.config import PROJECT_ROOT, dagster_home, image_root
from deer_pipeline.db.connect import DatabaseUrls, ensure_ready
from deer_pipeline.errors import DeerError

DAGSTER_YAML = PROJECT_ROOT / "dagster.yaml"
WORKSPACE_YAML = PROJECT_ROOT / "workspace.yaml"


def prepare_environment() -> DatabaseUrls:
    """Start or reach the database, migrate, and point Dagster at it via environment variables.

    Sets ``DAGSTER_HOME`` (default ``$DEER_HOME/dagster``), ``DEER_DAGSTER_STORAGE_URL`` and
    ``DEER_IMAGE_ROOT`` for this process and its children, and installs ``dagster.yaml``.

    Returns:
        The database URLs in use.
    """
    urls = ensure_ready()
    home = dagster_home()
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DeerError(f"cannot create DAGSTER_HOME {home}: {exc.strerror or exc}") from exc
    target = home / "dagster.yaml"
    if not target.exists() or target.read_bytes() != DAGSTER_YAML.read_bytes():
        shutil.copyfile(DAGSTER_YAML, target)
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ["DEER_DAGSTER_STORAGE_URL"] = urls.dagster_sqlalchemy
    os.environ.setdefault("DEER_IMAGE_ROOT", str(image_root()))
    return urls


def get_instance():
    """Return the ``DagsterInstance`` for ``DAGSTER_HOME`` after ``prepare_environment``."""
    import dagster as dg

    prepare_environment()
    return dg.DagsterInstance.get()
