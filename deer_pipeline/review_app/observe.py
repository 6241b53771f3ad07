"""Tell the Dagster UI when identities were last reviewed: an observation of ``deer_identities``.

When a review session that recorded decisions ends, one ``AssetObservation`` of
``deer_identities`` (no run needed) carries the time of the last decision, the reviewer and the
totals from ``review_log``, so the asset's page in the Dagster UI shows the review next to the
runs. ``deer_pipeline.reid.review.last_reviewed`` is the same reading for asset metadata.
"""

from __future__ import annotations

IDENTITIES_ASSET = "deer_identities"


def record_review(summary: dict) -> None:
    """Record ``last_reviewed``'s summary as an observation of ``deer_identities``.

    Args:
        summary: ``last_reviewed(cur)`` (time, reviewer, action, decisions, undone).
    """
    import dagster as dg

    from deer_pipeline.instance import get_instance

    instance = get_instance()
    instance.report_runless_asset_event(
        dg.AssetObservation(
            asset_key=IDENTITIES_ASSET,
            description="human review of identities",
            metadata={
                "last_reviewed": summary["at"],
                "last_reviewer": summary["reviewer"],
                "last_action": summary["action"],
                "review_decisions": summary["decisions"],
                "review_undone": summary["undone"],
            },
        )
    )
