"""Dagster assets, one module per stage; all but the benchmark are partitioned by location."""
