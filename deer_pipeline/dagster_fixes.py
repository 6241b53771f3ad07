"""A fix for a Dagster bug that made every run waiting for a pool slot spin a CPU core.

In Dagster 1.13.27 (the pinned version), a step that waits for a slot of a concurrency pool (our
``gpu`` and ``identity`` pools) leaves the run's executor polling in a loop that never sleeps:
``InstanceConcurrencyContext.interval_to_next_pending_claim_check`` returns
``min([0, *(ready_at - now)])``, which is never positive, so ``ActiveExecution.sleep_til_ready``
sleeps 0 s. Measured on the 2-core machine during a UI backfill of 7 locations: the six runs
waiting for the ``gpu`` slot used 27-40% of a core each (1:54 min of CPU each after 8 minutes), and
the one run holding the GPU step detected 13.4 images/s; with this fix the same backfill ran at
44.7 images/s in its steps (893 s for 35,000 images). Upstream
noticed the same ("we would always end up sleeping 0 for concurrency checks which leads to busy
waiting", dagster-io/dagster#20367, closed unmerged).

``apply()`` (called when the code location loads, so in run workers too) probes the method and, only
if it still returns a non-positive wait for a claim that is not due yet, replaces it with the
intended one: the time until the next due claim check, at least 0 and at most ``MAX_IDLE_SLEEP_S``
(so an executor with other steps in flight still reacts to them within a second).
"""

from __future__ import annotations

import time

from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext

MAX_IDLE_SLEEP_S = 1.0
UPSTREAM = InstanceConcurrencyContext.interval_to_next_pending_claim_check
"""The installed Dagster's own method, as it was before ``apply()``."""


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


def apply() -> bool:
    """Install the fix if this Dagster needs it; return whether it was installed."""
    if not pending_wait_is_broken():
        return False
    InstanceConcurrencyContext.interval_to_next_pending_claim_check = (
        interval_to_next_pending_claim_check
    )
    return True
