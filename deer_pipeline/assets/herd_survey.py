"""``herd_survey``: the herd survey report of the whole survey, rewritten after identities.

After a location's ``deer_identities`` the report (all locations, the ``survey`` resource's
window) is written again to ``$DEER_HOME/reports/herd-survey`` by ``exports/herd_survey.py`` (the
same code as ``deer-pipeline report herd``): built in a fresh folder, then moved into place file by
file, in the ``identity`` pool so two locations never interleave. Its metadata holds the headline
figures as a Markdown table and links the page. Its check warns when most of a count rests on deer
no person has reviewed.
"""

import os
import shutil
import tempfile
from pathlib import Path

import dagster as dg

from deer_pipeline.assets.quality_checks import checks_for
from deer_pipeline.config import deer_home
from deer_pipeline.exports.herd_page import number
from deer_pipeline.exports.herd_survey import PAGE
from deer_pipeline.exports.herd_survey import write_herd_survey as write_report
from deer_pipeline.jobs import PIPELINE_GROUP
from deer_pipeline.partitions import camera_locations
from deer_pipeline.pools import IDENTITY_POOL
from deer_pipeline.resources.database import DatabaseResource
from deer_pipeline.resources.images import ImageRootResource
from deer_pipeline.resources.survey import SurveyResource


def report_dir() -> Path:
    """Where the asset keeps the report: ``$DEER_HOME/reports/herd-survey``."""
    return deer_home() / "reports" / "herd-survey"


def headline_markdown(result: dict) -> str:
    """The headline figures as a Markdown table: identified and camera-survey counts, ratios."""
    u, j, r = result["unique"], result["jacobson"], result["ratios"]
    rows = [
        ("bucks", u["buck"], number(j["bucks"])),
        ("does", u["doe"], number(j["does"])),
        ("fawns", u["fawn"], number(j["fawns"])),
        ("unknown class", u["unknown"], ""),
        ("total", u["total"], number(j["total"])),
    ]
    lines = [
        "| | identified | camera-survey estimate |",
        "|---|---:|---:|",
        *[f"| {a} | {b} | {c} |" for a, b, c in rows],
        "",
        f"Does per buck {number(r['does_per_buck'], 2)}, fawns per doe "
        f"{number(r['fawns_per_doe'], 2)} (unique individuals); {result['reviewed_deer']} of "
        f"{u['total']} deer reviewed; {result['camera_days']} camera-days, "
        f"{result['window']['start'] or '-'} to {result['window']['end'] or '-'}.",
    ]
    return "\n".join(lines)


@dg.asset(
    partitions_def=camera_locations,
    group_name=PIPELINE_GROUP,
    deps=[dg.AssetKey("deer_identities")],
    pool=IDENTITY_POOL,
    kinds={"html", "json"},
    description="Herd survey: unique bucks, does and fawns, ratios, activity (all locations).",
)
def herd_survey(
    database: DatabaseResource, image_root: ImageRootResource, survey: SurveyResource
) -> dg.MaterializeResult:
    """Write the report to a fresh folder, then move its files into place."""
    start, end, locations = survey.window()
    out = report_dir()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".herd-survey-", dir=out.parent))
    try:
        with database.transaction() as cur:
            result = write_report(cur, staging, start, end, locations, image_root.path())
        out.mkdir(exist_ok=True)
        for stale in out.glob("herd-*.png"):
            if stale.name not in result["plots"].values():
                stale.unlink()
        for path in sorted(staging.iterdir()):
            os.replace(path, out / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    page = out / PAGE
    u = result["unique"]
    return dg.MaterializeResult(
        metadata={
            "headline": dg.MetadataValue.md(headline_markdown(result)),
            "report": dg.MetadataValue.path(str(page)),
            "report_url": dg.MetadataValue.url(page.as_uri()),
            "window_start": result["window"]["start"] or "",
            "window_end": result["window"]["end"] or "",
            "photos": result["images"],
            "camera_days": result["camera_days"],
            "unique_deer": u["total"],
            "unique_bucks": u["buck"],
            "unique_does": u["doe"],
            "unique_fawns": u["fawn"],
            "reviewed_deer": result["reviewed_deer"],
            "night_detections": sum(result["survey"].activity_night),
        }
    )


CHECKS = checks_for(
    "herd_survey", {"survey_window": lambda c: c.resources.survey.window()}, resources={"survey"}
)
defs = dg.Definitions(assets=[herd_survey], asset_checks=CHECKS)
