"""Camtrap DP settings as a Dagster resource: what the database does not know about a survey.

Every field has a visible default (UTC, *Odocoileus virginianus*); set them in the UI's launchpad
or a run config (``resources: {camtrap: {config: {timezone: America/Chicago}}}``).
"""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from deer_pipeline.exports.camtrap_dp import (
    DEFAULT_SCIENTIFIC_NAME,
    DEFAULT_TIMEZONE,
    CamtrapSettings,
)


class CamtrapResource(dg.ConfigurableResource):
    """Time zone, species, project and camera coordinates of the Camtrap DP package."""

    timezone: str = Field(
        default=DEFAULT_TIMEZONE, description="IANA time zone of the cameras' clocks"
    )
    scientific_name: str = Field(
        default=DEFAULT_SCIENTIFIC_NAME, description="scientificName of every observation"
    )
    project_title: str = Field(
        default=CamtrapSettings.project_title, description="Project title in datapackage.json"
    )
    contributor: str = Field(
        default=CamtrapSettings.contributor, description="Contact named in datapackage.json"
    )
    coordinates: dict[str, list[float]] = Field(
        default={},
        description="Location key or folder -> [latitude, longitude] (default: 0, 0, flagged)",
    )

    def settings(self) -> CamtrapSettings:
        """Return the exporter's settings."""
        return CamtrapSettings(
            timezone=self.timezone,
            scientific_name=self.scientific_name,
            project_title=self.project_title,
            contributor=self.contributor,
            coordinates={k: (float(v[0]), float(v[1])) for k, v in self.coordinates.items()},
        )
