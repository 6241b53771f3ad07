"""Ingest: find camera locations and images, read EXIF, hash content, group bursts (no Dagster)."""
