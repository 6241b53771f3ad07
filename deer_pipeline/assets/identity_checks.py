"""Asset checks of ``deer_identities``: no deer in two places at once, no confident sex conflict.

- ``no_same_frame_merge``: one deer with two sightings in one frame is physically impossible, a
  merge of two animals; everything built on the identities (counts, Camtrap DP ``individualID``)
  would be wrong: ERROR and blocking, so the Camtrap DP package is not rewritten from it.
- ``no_confident_sex_conflict``: a deer whose confident sightings are both doe and buck (or a
  fawn) is most likely two animals, but a misclassified box does the same and review fixes
  either: WARN.

The rules read the database (``db/quality.py``); kept apart from ``identities.py``, which owns
the identity asset itself.
"""

import dagster as dg

from deer_pipeline.assets.checks import ERROR, WARN, _figures, _meta
from deer_pipeline.db import quality
from deer_pipeline.partitions import camera_locations
from deer_pipeline.resources.database import DatabaseResource


@dg.asset_check(
    asset="deer_identities",
    partitions_def=camera_locations,
    blocking=True,
    description="No deer has two sightings in one frame.",
)
def no_same_frame_merge(
    context: dg.AssetCheckExecutionContext, database: DatabaseResource
) -> dg.AssetCheckResult:
    """A deer seen twice in one frame is two animals merged: blocks what is built on it."""
    fig = _figures(database, quality.same_frame_merges, context.partition_key)
    return dg.AssetCheckResult(
        passed=fig["merges"] == 0,
        severity=ERROR,
        metadata=_meta(fig),
        description=f"{fig['deer']} deer appear twice in one frame ({fig['merges']} frames)",
    )


@dg.asset_check(
    asset="deer_identities",
    partitions_def=camera_locations,
    description=f"No deer mixes confident (>= {quality.CONFIDENT} or corrected) doe/fawn/buck.",
)
def no_confident_sex_conflict(
    context: dg.AssetCheckExecutionContext, database: DatabaseResource
) -> dg.AssetCheckResult:
    """Deer whose confident sightings disagree on the class (a likely merge; review it)."""
    fig = _figures(database, quality.sex_conflicts, context.partition_key)
    return dg.AssetCheckResult(
        passed=fig["conflicts"] == 0,
        severity=WARN,
        metadata=_meta(fig),
        description=f"{fig['conflicts']} of {fig['deer']} deer mix confident classes",
    )


IDENTITY_CHECKS = [no_same_frame_merge, no_confident_sex_conflict]
