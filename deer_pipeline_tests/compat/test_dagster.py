"""The Dagster shims: each works, and each test says when its shim can go or must be re-checked."""

import time

import pytest
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext

from deer_pipeline import compat
from deer_pipeline.compat import dagster as dagster_fixes


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
    """If this fails, Dagster fixed it upstream: drop the pool-wait fix from compat/dagster.py."""
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


def test_written_for_the_installed_dagster():
    """If this fails, Dagster moved: re-check every shim in compat/dagster.py, then WRITTEN_FOR."""
    assert compat.written_for(dagster_fixes.WRITTEN_FOR), dagster_fixes.WRITTEN_FOR


def test_asset_selection_strings_resolve_or_raise_value_error():
    import dagster as dg

    from deer_pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    assert dagster_fixes.resolve_asset_selection("raw_images+", graph) == {
        dg.AssetKey("raw_images"),
        dg.AssetKey("detections"),
    }
    for text in ("key:(", "no_such_asset"):
        with pytest.raises(ValueError):
            dagster_fixes.resolve_asset_selection(text, graph)


def test_the_selection_error_is_still_private():
    """If this fails, dagster exports it: catch it by its public name, drop the private import."""
    import dagster as dg

    assert not hasattr(dg, "DagsterInvalidAssetSelectionError")


def test_freeing_a_runs_slots_still_has_no_public_api():
    """If this fails, DagsterInstance frees slots itself: call that from fail_dead_run."""
    import dagster as dg

    assert not hasattr(dg.DagsterInstance, "free_concurrency_slots_for_run")


def test_storage_class_data_is_still_private():
    """If this fails, dagster exports ConfigurableClassData: import it from there in instance.py."""
    import dagster as dg

    assert not hasattr(dg, "ConfigurableClassData")


def test_partitioned_checks_still_warn_as_a_preview():
    """If this fails, partitioned asset checks are stable: drop the filter."""
    import warnings

    import dagster as dg

    from deer_pipeline.partitions import camera_locations

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dg.AssetCheckSpec("probe", asset="raw_images", partitions_def=camera_locations)
    assert any(dagster_fixes.PARTITIONED_CHECK_PREVIEW in str(w.message) for w in caught)
