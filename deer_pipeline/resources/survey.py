"""The herd survey's window as a Dagster resource: which camera-local dates and locations count.

Every field has a visible default (every date, every location); set them in the UI's launchpad or a
run config (``resources: {survey: {config: {start: "2024-09-01", end: "2024-11-30"}}}``).
"""

from __future__ import annotations

from datetime import date

import dagster as dg
from pydantic import Field

from deer_pipeline.errors import DeerError


def _day(text: str, name: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise DeerError(f"survey {name} {text!r} is not a date (YYYY-MM-DD)") from exc


class SurveyResource(dg.ConfigurableResource):
    """The survey window of the ``herd_survey`` report."""

    start: str = Field(default="", description="First camera-local date, YYYY-MM-DD (empty: all)")
    end: str = Field(default="", description="Last camera-local date, inclusive (empty: all)")
    locations: list[str] = Field(
        default=[], description="Location keys or folder names (empty: every location)"
    )

    def window(self) -> tuple[date | None, date | None, list[str] | None]:
        """Return (start, end, locations) for ``exports.herd_survey``; a bad date is a DeerError."""
        return _day(self.start, "start"), _day(self.end, "end"), list(self.locations) or None
