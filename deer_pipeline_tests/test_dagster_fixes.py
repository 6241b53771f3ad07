"""The pool-wait fix: a run waiting for a pool slot sleeps until its next claim check."""

import time

from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext

from deer_pipeline import dagster_fixes


def _context(due_in_s):
    ctx = object.__new__(InstanceConcurrencyContext)
    ctx._pending_claims = {"infer"} if due_in_s is not None else set()
    ctx._pending_timeouts = {"infer": time.time() + due_in_s} if due_in_s is not None else {}
    return ctx


def test_loading_the_definitions_installs_the_fix():
    import deer_pipeline.definitions  # noqa: F401  (applies the fix on import)

    assert not dagster_fixes.pending_wait_is_broken()
    assert 0.9 <= _context(30.0).interval_to_next_pending_claim_check() <= 1.0
    assert 0.2 <= _context(0.3).interval_to_next_pending_claim_check() <= 0.3
    assert _context(-5.0).interval_to_next_pending_claim_check() == 0.0  # due: check now
    assert _context(None).interval_to_next_pending_claim_check() == 0.0  # nothing pending


def test_the_pinned_dagster_still_has_the_bug_the_fix_is_for():
    """If this fails, Dagster fixed it upstream: drop deer_pipeline/dagster_fixes.py."""
    import deer_pipeline.definitions  # noqa: F401  (applies the fix on import)

    class Upstream(InstanceConcurrencyContext):
        interval_to_next_pending_claim_check = dagster_fixes.UPSTREAM

    assert dagster_fixes.pending_wait_is_broken(Upstream)
    assert InstanceConcurrencyContext.interval_to_next_pending_claim_check is not (
        dagster_fixes.UPSTREAM
    )


def test_a_reworked_dagster_is_left_alone():
    class Reworked(InstanceConcurrencyContext):
        def interval_to_next_pending_claim_check(self):
            return self._claim_schedule.next_due()  # state the probe does not set

    assert not dagster_fixes.pending_wait_is_broken(Reworked)
