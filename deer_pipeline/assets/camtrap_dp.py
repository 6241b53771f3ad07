"""``camtrap_dp``: the Camtrap DP 1.0.2 package of every location, rewritten after identities.

After a location's ``deer_identities`` the whole package (all locations) is written again to
``$DEER_HOME/reports/camtrap-dp`` by ``exports/camtrap_dp.py`` (the same code as ``deer-pipeline
export camtrap-dp``), linked from the materialization's metadata. Files are written to a fresh
folder and moved into place one by one, in the ``identity`` pool, so two locations never
interleave. Its check: every deer seen at the location appears as an ``individualID``.
"""

import os
import shutil
import tempfile
from pathlib import Path

import dagster as dg

from deer_pipeline.assets.quality_checks import checks_for
from deer_pipeline.config import deer_home
from deer_pipeline.exports.camtrap_dp import write_camtrap_dp
from deer_pipeline.jobs import PIPELINE_GROUP
from deer_pipeline.partitions import camera_locations
from deer_pipeline.pools import IDENTITY_POOL
from deer_pipeline.resources.camtrap import CamtrapResource
from deer_pipeline.resources.database import DatabaseResource

FILES = ("deployments.csv", "media.csv", "observations.csv", "datapackage.json")


def package_dir() -> Path:
    """Where the asset keeps the package: ``$DEER_HOME/reports/camtrap-dp``."""
    return deer_home() / "reports" / "camtrap-dp"


@dg.asset(
    partitions_def=camera_locations,
    group_name=PIPELINE_GROUP,
    deps=[dg.AssetKey("deer_identities")],
    pool=IDENTITY_POOL,
    kinds={"csv", "json"},
    description="Camtrap DP 1.0.2 package (all locations) with individualID from the identities.",
)
def camtrap_dp(database: DatabaseResource, camtrap: CamtrapResource) -> dg.MaterializeResult:
    """Write the package to a fresh folder, then move its files into place."""
    out = package_dir()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".camtrap-dp-", dir=out.parent))
    try:
        with database.transaction() as cur:
            counts = write_camtrap_dp(cur, staging, camtrap.settings())
        out.mkdir(exist_ok=True)
        for name in FILES:
            os.replace(staging / name, out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    counts.pop("path")
    return dg.MaterializeResult(
        metadata={
            **counts,
            "package": dg.MetadataValue.path(str(out / "datapackage.json")),
            "timezone": camtrap.timezone,
            "scientific_name": camtrap.scientific_name,
        }
    )


CHECKS = checks_for(
    "camtrap_dp", {"observations_csv": lambda _: (package_dir() / "observations.csv",)}
)
defs = dg.Definitions(assets=[camtrap_dp], asset_checks=CHECKS)
