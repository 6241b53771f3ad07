"""Dagster internals the project relies on (written for Dagster 1.13.27, the pinned version).

1. **Pool waits spin a CPU core.** A step waiting for a slot of a concurrency pool (our ``gpu`` and
   ``identity`` pools) leaves the run's executor polling in a loop that never sleeps:
   ``InstanceConcurrencyContext.interval_to_next_pending_claim_check`` returns
   ``min([0, *(ready_at - now)])``, never positive, so ``ActiveExecution.sleep_til_ready`` sleeps
   0 s. Measured on the 2-core machine during a UI backfill of 7 locations: the six runs waiting
   for the ``gpu`` slot used 27-40% of a core each, and the run holding the GPU detected 13.4
   images/s; with the fix, 44.7 images/s (893 s for 35,000 images). Upstream noticed it
   (dagster-io/dagster#20367, closed unmerged). :func:`apply_pool_wait_fix` (called when the code
   location loads, so in run workers too) probes the method and only if it still returns a
   non-positive wait for a claim not yet due, replaces it with the intended one: the time until
   the next due claim check, between 0 and ``MAX_IDLE_SLEEP_S``.
2. **Invalid asset selection strings** raise ``DagsterInvalidAssetSelectionError``, which
   ``dagster`` does not export: :func:`resolve_asset_selection` turns it into ``ValueError``.
3. **Freeing a dead run's pool slots** has no public API: :func:`fail_dead_run` marks the run
   failed and calls the event log storage's ``free_concurrency_slots_for_run``.
4. **A per-run code version.** An asset's ``code_version`` is fixed when the definitions load,
   but run config may choose other model weights. Dagster records the code version of a
   materialization as its ``dagster/code_version`` tag, and merges a ``MaterializeResult``'s own
   tags over the ones it computes (``execute_step._get_output_asset_events``), so
   :func:`code_version_tags` records the version of what really ran.
5. **Two runs racing to create a pool's limit.** A pool's limit row is created by the first run
   that claims a slot (``initialize_concurrency_limit_to_default``): INSERT, and on a unique
   violation an UPDATE in the same transaction. On PostgreSQL the failed INSERT aborts the
   transaction, so the loser's UPDATE fails ("current transaction is aborted") and its run fails.
   Seen here when the daemon started two or three runs at once on a fresh instance (the pool
   test, the sensor test). :func:`initialize_pools` creates the rows of our pools one after
   another before the daemon starts runs.
6. **Storage parts need a private class.** A custom instance storage hands Dagster the class data
   of its event, run and schedule parts (``ConfigurableClassData``, from ``dagster._serdes``,
   not exported): re-exported here for ``instance.py``.
7. **Partitioned asset checks warn on every import.** ``AssetCheckSpec(partitions_def=...)`` is a
   preview feature that warns each time a check is defined;
   :func:`silence_partitioned_check_preview` filters that one message, once, here.
"""

from __future__ import annotations

import time
import warnings

import dagster as dg
from dagster._core.definitions.asset_selection import DagsterInvalidAssetSelectionError
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext
from dagster._serdes import ConfigurableClassData

WRITTEN_FOR = ("dagster", "==1.13.27")
PARTITIONED_CHECK_PREVIEW = "Specifying a partitions_def on an AssetCheckSpec"
__all__ = ["ConfigurableClassData"]


def silence_partitioned_check_preview() -> None:
    """Filter Dagster's preview warning for partitioned asset checks (one message, idempotent)."""
    warnings.filterwarnings("ignore", message=PARTITIONED_CHECK_PREVIEW)


MAX_IDLE_SLEEP_S = 1.0
UPSTREAM = InstanceConcurrencyContext.interval_to_next_pending_claim_check
"""The installed Dagster's own method, as it was before :func:`apply_pool_wait_fix`."""


def interval_to_next_pending_claim_check(self: InstanceConcurrencyContext) -> float:
    """Seconds until the earliest pending pool claim is due for another check (0 to 1 s)."""
    if not self._pending_claims or not self._pending_timeouts:
        return 0.0
    wait = min(self._pending_timeouts.values()) - time.time()
    return min(max(wait, 0.0), MAX_IDLE_SLEEP_S)


def pending_wait_is_broken(cls: type = InstanceConcurrencyContext) -> bool:
    """Whether ``cls`` reports no wait for a pending claim that is only due in a minute.

    A Dagster whose method reads other state than the probe sets (a later, reworked version)
    counts as not broken: the fix is for the code it was written against.
    """
    probe = object.__new__(cls)
    probe._pending_claims = {"probe"}
    probe._pending_timeouts = {"probe": time.time() + 60.0}
    try:
        return cls.interval_to_next_pending_claim_check(probe) <= 0
    except (AttributeError, KeyError, TypeError):
        return False


def apply_pool_wait_fix() -> bool:
    """Install the pool-wait fix if this Dagster needs it; return whether it was installed."""
    if not pending_wait_is_broken():
        return False
    InstanceConcurrencyContext.interval_to_next_pending_claim_check = (
        interval_to_next_pending_claim_check
    )
    return True


def resolve_asset_selection(text: str, asset_graph) -> set[dg.AssetKey]:
    """Resolve a Dagster asset selection string (``raw_images+``) against an asset graph.

    Raises:
        ValueError: the string is not a valid selection, or names an unknown asset; the message
            is Dagster's.
    """
    try:
        return set(dg.AssetSelection.from_string(text).resolve(asset_graph))
    except (DagsterInvalidAssetSelectionError, dg.DagsterInvalidSubsetError) as exc:
        raise ValueError(str(exc).splitlines()[0]) from exc


def fail_dead_run(instance: dg.DagsterInstance, dagster_run: dg.DagsterRun, message: str) -> None:
    """Mark a run whose process died as failed and free the pool slots it held."""
    instance.report_run_failed(dagster_run, message)
    instance.event_log_storage.free_concurrency_slots_for_run(dagster_run.run_id)


CODE_VERSION_TAG = "dagster/code_version"


def code_version_tags(code_version: str) -> dict[str, str]:
    """Tags for a ``MaterializeResult`` recording ``code_version`` as its code version."""
    return {CODE_VERSION_TAG: code_version}


def initialize_pools(instance: dg.DagsterInstance, pools: tuple[str, ...]) -> list[str]:
    """Create the limit rows of ``pools`` that do not exist yet, one at a time (see item 5).

    Args:
        instance: the Dagster instance the daemon will serve.
        pools: pool names (``deer_pipeline.pools.POOLS``).

    Returns:
        The pools whose rows were created now.
    """
    storage = instance.event_log_storage
    created = [pool for pool in pools if pool not in storage.get_concurrency_keys()]
    for pool in created:
        storage.initialize_concurrency_limit_to_default(pool)
    return created
