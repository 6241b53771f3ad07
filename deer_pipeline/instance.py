"""The Dagster instance: PostgreSQL storage (dagster-postgres) on the project's own server.

The repository's ``dagster.yaml`` names :class:`ProjectPostgresStorage` as the instance storage.
Given no URL, it resolves the project's database the way every ``deer-pipeline`` command does
(``DEER_DATABASE_URL`` / ``DEER_DAGSTER_DATABASE_URL``, else the embedded server under
``DEER_HOME``, started on demand). So plain ``dagster dev`` and ``dagster definitions validate``
from the repository root (Dagster's temporary instance reads ``./dagster.yaml``) work on the
embedded default, and the webserver, daemon and run workers each reach the same server.
``deer-pipeline`` commands also copy the file into ``DAGSTER_HOME`` (default
``$DEER_HOME/dagster``) so runs persist between sessions.
"""

from __future__ import annotations

import shutil

import yaml
from dagster_postgres.storage import DagsterPostgresStorage
from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config

from deer_pipeline.compat.dagster import ConfigurableClassData
from deer_pipeline.config import PROJECT_ROOT, dagster_home, export, image_root
from deer_pipeline.db.connect import DatabaseUrls, ensure_ready
from deer_pipeline.errors import DeerError

DAGSTER_YAML = PROJECT_ROOT / "dagster.yaml"
WORKSPACE_YAML = PROJECT_ROOT / "workspace.yaml"


class ProjectPostgresStorage(DagsterPostgresStorage):
    """dagster-postgres storage whose URL defaults to the project's ``dagster`` database.

    Config (all optional) is dagster-postgres' own: ``postgres_url`` or ``postgres_db`` point it
    at another server; with neither, :func:`deer_pipeline.db.connect.ensure_ready` resolves the
    project's database (starting the embedded server if needed).
    """

    @classmethod
    def from_config_value(cls, inst_data, config_value):  # noqa: D102 - Dagster's hook
        if config_value.get("postgres_url") or config_value.get("postgres_db"):
            url = pg_url_from_config(config_value)
        else:
            url = ensure_ready().dagster_sqlalchemy
        return cls(
            inst_data=inst_data,
            postgres_url=url,
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )

    def _part(self, class_name: str) -> ConfigurableClassData | None:
        # the parts carry the resolved URL: the inherited ones would copy a config without one
        if not self.inst_data:
            return None
        config = {"postgres_url": self.postgres_url}
        return ConfigurableClassData("dagster_postgres", class_name, yaml.safe_dump(config))

    @property
    def event_storage_data(self) -> ConfigurableClassData | None:  # noqa: D102
        return self._part("PostgresEventLogStorage")

    @property
    def run_storage_data(self) -> ConfigurableClassData | None:  # noqa: D102
        return self._part("PostgresRunStorage")

    @property
    def schedule_storage_data(self) -> ConfigurableClassData | None:  # noqa: D102
        return self._part("PostgresScheduleStorage")


def prepare_environment() -> DatabaseUrls:
    """Start or reach the database, migrate, and give Dagster a persistent ``DAGSTER_HOME``.

    Sets ``DAGSTER_HOME`` (default ``$DEER_HOME/dagster``) and ``DEER_IMAGE_ROOT`` for this
    process and its children, and installs ``dagster.yaml`` there.

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
    export("DAGSTER_HOME", str(home))
    export("DEER_IMAGE_ROOT", str(image_root()), keep_existing=True)
    return urls


def get_instance():
    """Return the ``DagsterInstance`` for ``DAGSTER_HOME`` after ``prepare_environment``."""
    import dagster as dg

    prepare_environment()
    return dg.DagsterInstance.get()
