"""The image root (``DEER_IMAGE_ROOT``) and the ingest knobs as a Dagster resource.

With ``root`` unset the resource reads ``deer_pipeline.config.image_root()`` when used, so the
webserver, the daemon and run workers all follow the environment they run in.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from deer_pipeline.config import image_root
from deer_pipeline.ingest.ingest import IngestSettings
from deer_pipeline.ingest.locations import Location, discover_locations


class ImageRootResource(dg.ConfigurableResource):
    """Where the camera folders are, and how they are ingested."""

    root: str | None = Field(
        default=None, description="Image root; default DEER_IMAGE_ROOT, else $DEER_HOME/demo-images"
    )
    settle_seconds: float = Field(
        default=2.0, description="A file must be untouched this long before it is ingested"
    )
    burst_gap_seconds: float = Field(
        default=5.0, description="Largest gap between consecutive frames of one burst"
    )
    max_megapixels: float = Field(
        default=100.0, description="Refuse images declaring more pixels (decompression bombs)"
    )
    workers: int = Field(default=2, description="Threads reading, hashing and parsing files")

    def path(self) -> Path:
        """Return the image root as an absolute path."""
        return Path(self.root).expanduser().resolve() if self.root else image_root()

    def locations(self) -> list[Location]:
        """Return the camera locations found under the root."""
        return discover_locations(self.path())

    def settings(self) -> IngestSettings:
        """Return the ingest settings this resource configures."""
        return IngestSettings(
            settle_s=self.settle_seconds,
            burst_gap_s=self.burst_gap_seconds,
            max_pixels=int(self.max_megapixels * 1_000_000),
            workers=max(1, self.workers),
        )
