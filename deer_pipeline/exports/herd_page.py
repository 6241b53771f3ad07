"""The herd survey's page: ``index.html`` from the survey's figures and plot files.

The page is rendered from ``templates/herd_survey.html`` (Jinja2, autoescaped) with inline CSS and
no script or remote resource, so it opens offline from a USB stick; pictures are the PNG files
beside it, each followed by its numbers as a table. Locations appear under their folder names.
"""

from __future__ import annotations

from datetime import UTC, datetime

import jinja2

from deer_pipeline.exports.herd_survey import (
    CLASSES,
    UNIQUE_KEYS,
    Survey,
    most_seen,
    sightings_histogram,
    unreviewed_shares,
)

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("deer_pipeline.exports", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
)


def number(value, digits: int = 1) -> str:
    """A figure for people: ``-`` for None, integers as they are, others rounded."""
    if value is None:
        return "–"
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return f"{value:.{digits}f}"


_ENV.filters["number"] = number


def why_they_differ(survey: Survey) -> str:
    """One sentence on why the camera-survey estimate differs from the identified counts."""
    per = survey.photos_per_deer()
    estimate = survey.jacobson()
    if estimate["does"] is None:
        return (
            "The camera-survey estimate scales unique bucks by the doe and fawn photos per buck "
            "photo; with no buck photos in this window it cannot be computed."
        )
    if per["buck"] is None or per["doe"] is None:
        return (
            "The camera-survey estimate assumes bucks and does are photographed equally often; "
            "without identified bucks and does here that assumption cannot be checked."
        )
    times = per["buck"] / per["doe"]
    identified = survey.unique["doe"]
    off = 100.0 * (estimate["does"] - identified) / identified
    side = "low" if off < 0 else "high"
    return (
        f"Each identified buck was photographed {per['buck']:.1f} times and each doe "
        f"{per['doe']:.1f} times ({times:.1f}x); the camera-survey estimate assumes equal rates, "
        f"so it puts does at {estimate['does']:.1f} where {identified} were identified "
        f"({abs(off):.0f}% {side}; Moore et al. 2014 found 1.9x and 32% low)."
    )


def render_page(survey: Survey, data: dict, plots: dict[str, str]) -> str:
    """Return the page's HTML.

    Args:
        survey: the figures read from the tables.
        data: the summary (``summary.json``) of the same survey.
        plots: ``{figure: PNG file name}`` beside the page (empty when there are no photos).
    """
    unique, reviewed = survey.unique, survey.reviewed
    hist = sightings_histogram(survey)
    names = {x.key: x.name for x in survey.locations}
    top = [
        {
            "id": d.id,
            "sex": d.sex,
            "sightings": len(d.times),
            "first": min(d.times),
            "last": max(d.times),
            "days": len({t.date() for t in d.times}),
            "locations": sorted({names.get(k, k) for k in d.where}),
        }
        for d in most_seen(survey)
        if d.times
    ]
    return _ENV.get_template("herd_survey.html").render(
        survey=survey,
        data=data,
        plots=plots,
        classes=CLASSES,
        unique_keys=UNIQUE_KEYS,
        unique=unique,
        reviewed=reviewed,
        unreviewed=unreviewed_shares(survey),
        estimate=survey.jacobson(),
        ratios=survey.ratios(),
        photo_ratios=survey.photo_ratios(),
        photos_per_deer=survey.photos_per_deer(),
        why=why_they_differ(survey),
        hist=hist,
        top=top,
        location_names=[x.name for x in survey.locations],
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )
