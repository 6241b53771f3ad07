"""Benchmarks: throughput per stage, measured side by side in one run (no Dagster imports)."""
