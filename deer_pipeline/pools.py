"""Dagster concurrency pools: the names that scarce-resource steps claim slots in.

An asset declared with ``pool=GPU_POOL`` runs only while its run holds a slot of the ``gpu`` pool.
Slots are counted in Dagster's instance storage (PostgreSQL), so the limit holds across every run,
run worker and host that shares the instance. Limits are not set here but on the instance: the
repository's ``dagster.yaml`` gives every pool ``concurrency.pools.default_limit`` (1) slots, and
``dagster instance concurrency set gpu N`` raises the ``gpu`` pool to the number of GPUs.
See docs/scaling-out.md.
"""

GPU_POOL = "gpu"
"""Steps that hold a GPU (detection and embedding): one at a time per GPU."""

IDENTITY_POOL = "identity"
"""Steps that assign sightings to individual deer: serialized, since all locations share one
gallery of known deer and two concurrent matchers could create the same new deer twice."""

POOLS = (GPU_POOL, IDENTITY_POOL)
"""Every pool the pipeline declares."""
