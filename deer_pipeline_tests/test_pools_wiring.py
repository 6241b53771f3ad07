"""The real definitions declare the pools that test_concurrency_pools exercises, on its executor."""

from __future__ import annotations

import dagster as dg

from deer_pipeline.pools import GPU_POOL, IDENTITY_POOL, POOLS


def _pools_by_asset() -> dict[str, str | None]:
    from deer_pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    pools = {}
    for key in graph.get_all_asset_keys():
        assets_def = graph.get(key).assets_def
        if assets_def.is_executable:
            pools[key.to_user_string()] = assets_def.op.pool
    return pools


def test_gpu_and_identity_steps_are_pooled_and_ingest_is_not():
    pools = _pools_by_asset()
    assert pools["detections"] == pools["embeddings"] == GPU_POOL
    assert pools["deer_identities"] == IDENTITY_POOL
    assert pools["raw_images"] is None
    assert {pool for pool in pools.values() if pool} <= set(POOLS)


def test_pool_test_location_runs_on_the_definitions_executor():
    from deer_pipeline.definitions import defs
    from deer_pipeline_tests import pool_location

    assert defs.executor is dg.in_process_executor
    assert pool_location.defs.executor is defs.executor
