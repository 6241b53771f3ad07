"""Tell the Dagster UI when identities were last reviewed: an observation of ``deer_identities``.

When a review session that recorded decisions ends, one ``AssetObservation`` of
``deer_identities`` (no run needed) carries the time of the last decision, the reviewer and the
totals from ``review_log``, so the asset's page in the Dagster UI shows the review next to the
runs. Importing Dagster and opening its instance takes seconds, so ``ReviewObserver`` does that
in a background thread while the app serves, and Ctrl-C only writes the event.
``deer_pipeline.reid.review.last_reviewed`` is the same reading for asset metadata.
"""

from __future__ import annotations

import threading

IDENTITIES_ASSET = "deer_identities"


class ReviewObserver:
    """Opens the Dagster instance in the background; records the review on request."""

    def __init__(self):
        self._instance = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._open, name="dagster-instance", daemon=True)

    def start(self) -> None:
        """Start opening the instance."""
        self._thread.start()

    def _open(self) -> None:
        try:
            from deer_pipeline.instance import get_instance

            self._instance = get_instance()
        except BaseException as exc:  # handed to record(), which raises it in the main thread
            self._error = exc

    def record(self, summary: dict, timeout_s: float = 120.0) -> None:
        """Record ``last_reviewed``'s summary as an observation of ``deer_identities``.

        Args:
            summary: ``last_reviewed(cur)`` (time, reviewer, action, decisions, undone).
            timeout_s: how long to wait for the instance to open.

        Raises:
            TimeoutError: the instance did not open in time.
        """
        self._thread.join(timeout_s)
        if self._error is not None:
            raise self._error
        if self._instance is None:
            raise TimeoutError(f"the Dagster instance did not open in {timeout_s:g} s")
        import dagster as dg

        self._instance.report_runless_asset_event(
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
