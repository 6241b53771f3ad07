"""Asset checks made from the quality rules of ``db/quality.py``: one factory, one shape.

Every rule becomes a partitioned asset check named as the rule, with its severity and blocking
flag; the check reads the rule's figures for the run's location in one read-only transaction and
reports them as metadata (example rows as JSON). A rule that needs a fact of the run (``needs``)
gets it from the provider its asset's module passes in. Each asset module builds its own checks
(``checks_for``), so an asset and its checks are defined in one place.
"""

from collections.abc import Callable, Collection, Mapping

import dagster as dg

from deer_pipeline.compat.dagster import silence_partitioned_check_preview
from deer_pipeline.db import quality
from deer_pipeline.partitions import camera_locations
from deer_pipeline.resources.database import DatabaseResource

silence_partitioned_check_preview()  # partitioned checks are a Dagster preview (compat/dagster.py)

Provider = Callable[[dg.AssetCheckExecutionContext], tuple]


def _plain(value):
    return value if isinstance(value, int | float | str | list) else str(value)


def check_metadata(figures: dict) -> dict:
    """Check metadata: plain numbers as they are, example rows as JSON, absent figures left out."""
    return {
        k: dg.MetadataValue.json([list(map(_plain, r)) if isinstance(r, tuple) else r for r in v])
        if k == "examples"
        else v
        for k, v in figures.items()
        if v is not None
    }


def _check(
    rule: quality.Rule, provider: Provider | None, resources: Collection[str]
) -> dg.AssetChecksDefinition:
    severity = dg.AssetCheckSeverity.ERROR if rule.error else dg.AssetCheckSeverity.WARN

    @dg.asset_check(
        name=rule.name,
        asset=rule.asset,
        partitions_def=camera_locations,
        blocking=rule.blocking,
        description=rule.description,
        required_resource_keys={"database", *resources},
    )
    def check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        extra = provider(context) if provider is not None else ()
        database: DatabaseResource = context.resources.database
        with database.transaction() as cur:
            figures = rule.figures(cur, context.partition_key, *extra)
        return dg.AssetCheckResult(
            passed=bool(rule.passed(figures)),
            severity=severity,
            metadata=check_metadata(figures),
            description=rule.summary(figures),
        )

    return check


def checks_for(
    asset: str, providers: Mapping[str, Provider] | None = None, resources: Collection[str] = ()
) -> list[dg.AssetChecksDefinition]:
    """Return the asset checks of ``asset``, one per rule of ``db/quality.py``.

    Args:
        asset: the asset's key.
        providers: for each ``Rule.needs`` of its rules, a function of the check's context that
            returns the extra arguments of the rule's figures.
        resources: resource keys the providers read (``context.resources``), besides
            ``database``.

    Raises:
        KeyError: a rule needs a provider that was not given.
    """
    providers = providers or {}
    return [
        _check(rule, providers[rule.needs] if rule.needs else None, resources)
        for rule in quality.rules_of(asset)
    ]
